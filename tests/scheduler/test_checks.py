import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.test import modify_settings, override_settings

from scheduler.checks import check_installed_apps, sqlite_warnings, tasks_backend_problem
from scheduler.compat import tasks_package
from scheduler.models import Schedule

IMMEDIATE = {"default": {"BACKEND": f"{tasks_package()}.backends.immediate.ImmediateBackend"}}
DUMMY = {"default": {"BACKEND": f"{tasks_package()}.backends.dummy.DummyBackend"}}


def app_check_ids() -> list[str]:
    """Return the ids of the app's system check messages under the current settings."""
    return sorted(m.id for m in run_checks() if m.id and m.id.startswith("scheduler."))


def check_ids(**scheduler) -> list[str]:
    with override_settings(SCHEDULER=scheduler):
        return app_check_ids()


def test_defaults_pass():
    assert check_ids() == []


def test_settings_that_are_not_a_dict_are_an_error():
    with override_settings(SCHEDULER=["nope"]):
        assert app_check_ids() == ["scheduler.E001"]


@pytest.mark.parametrize(
    ("setting", "check_id"),
    [
        ({"TYPO_KEY": 1}, "scheduler.W001"),
        ({"ALLOWED_COMMANDS": "cleanup_tokens"}, "scheduler.E002"),
        ({"ALLOWED_COMMANDS": ["no_such_command"]}, "scheduler.W002"),
        ({"ALLOWED_COMMANDS": ["say", None]}, "scheduler.E002"),
        ({"EXECUTOR": "celery"}, "scheduler.E003"),
        ({"OUTPUT_LIMIT": 10}, "scheduler.E004"),
        ({"POLL_INTERVAL": 0}, "scheduler.E005"),
        ({"SHUTDOWN_GRACE": "30"}, "scheduler.E005"),
        ({"MAX_CONCURRENT_RUNS": 0}, "scheduler.E006"),
        ({"TASKS_MAX_AGE": -1}, "scheduler.E005"),
        ({"EXECUTOR": "tasks", "TASKS_BACKEND": "nowhere"}, "scheduler.E011"),
        ({"EXECUTOR": "tasks", "TASKS_QUEUE": "no-such-queue"}, "scheduler.E011"),
        ({"EXTRA_ALLOWED_COMMANDS": "clearsessions"}, "scheduler.E012"),
        ({"EXTRA_ALLOWED_COMMANDS": ["flush", 3]}, "scheduler.E012"),
        ({"EXTRA_ALLOWED_COMMANDS": ["flush", "no_such_command"]}, "scheduler.W004"),
    ],
)
def test_misconfiguration_is_reported_with_a_stable_id(setting, check_id):
    assert check_ids(**setting) == [check_id]


def test_allowed_command_lists_pass():
    assert check_ids(ALLOWED_COMMANDS=["say"], EXTRA_ALLOWED_COMMANDS=["flush"]) == []
    assert check_ids(ALLOWED_COMMANDS={"say"}, EXTRA_ALLOWED_COMMANDS=("flush",)) == []


def test_the_tasks_executor_on_a_backend_with_workers_passes():
    assert check_ids(EXECUTOR="tasks") == []
    assert check_ids(EXECUTOR="tasks", TASKS_BACKEND="rq") == []


@pytest.mark.parametrize("tasks", [IMMEDIATE, DUMMY], ids=["immediate", "dummy"])
def test_a_tasks_backend_without_workers_is_an_error(tasks):
    with override_settings(TASKS=tasks):
        assert check_ids(EXECUTOR="tasks") == ["scheduler.E011"]


@override_settings()
def test_the_tasks_executor_without_a_tasks_setting_is_an_error():
    del settings.TASKS
    assert check_ids(EXECUTOR="tasks") == ["scheduler.E011"]
    assert "settings.TASKS is not set" in tasks_backend_problem()


def executor_errors() -> list[str]:
    schedule = Schedule(name="x", command="say", args=["hi"], interval=60, executor="tasks")
    with pytest.raises(ValidationError) as info:
        schedule.full_clean()
    return info.value.message_dict["executor"]


@pytest.mark.django_db
@override_settings()
def test_a_tasks_schedule_without_a_tasks_setting_is_refused():
    del settings.TASKS
    assert executor_errors() == [tasks_backend_problem()]
    assert "Immediate backend, would run commands inside the scheduler" in executor_errors()[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tasks", "name"), [(IMMEDIATE, "ImmediateBackend"), (DUMMY, "DummyBackend")]
)
def test_a_tasks_schedule_on_a_backend_without_workers_is_refused(tasks, name):
    with override_settings(TASKS=tasks):
        assert f"'default' is {name}, which hands runs to no worker" in executor_errors()[0]


def test_a_missing_django_apscheduler_app_names_the_line_to_add():
    with modify_settings(INSTALLED_APPS={"remove": ["django_apscheduler"]}):
        (error,) = check_installed_apps()
    assert error.id == "scheduler.E020"
    assert '"django_apscheduler",' in error.hint


def test_installed_apps_with_django_apscheduler_pass():
    assert check_installed_apps() == []


def sqlite(**options) -> dict:
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}
    return {**database, "OPTIONS": options} if options else database


@pytest.mark.parametrize(
    ("database", "line"),
    [
        (sqlite(), 'DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}'),
        (sqlite(timeout=20), 'DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"'),
        (
            sqlite(transaction_mode="DEFERRED"),
            'DATABASES["default"]["OPTIONS"]["transaction_mode"]',
        ),
    ],
)
def test_sqlite_without_immediate_transactions_warns_with_the_line_to_paste(database, line):
    (warning,) = sqlite_warnings({"default": database})
    assert warning.id == "scheduler.W010"
    assert line in warning.hint


def test_the_pasted_sqlite_line_silences_the_warning():
    databases = {"default": sqlite()}
    (warning,) = sqlite_warnings(databases)
    exec(warning.hint.split("after DATABASES: ", 1)[1], {"DATABASES": databases})
    assert sqlite_warnings(databases) == []


def test_immediate_sqlite_and_other_databases_pass():
    databases = {
        "default": sqlite(transaction_mode="IMMEDIATE"),
        "other": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"},
    }
    assert sqlite_warnings(databases) == []
