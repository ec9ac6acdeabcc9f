import pytest
from django.core.checks import run_checks
from django.test import override_settings


def check_ids(**scheduler) -> set[str]:
    with override_settings(SCHEDULER=scheduler):
        return {message.id for message in run_checks() if message.id.startswith("scheduler.")}


def test_defaults_pass():
    assert check_ids() == set()


def test_settings_that_are_not_a_dict_are_an_error():
    with override_settings(SCHEDULER=["nope"]):
        assert "scheduler.E001" in {m.id for m in run_checks()}


@pytest.mark.parametrize(
    ("setting", "check_id"),
    [
        ({"TYPO_KEY": 1}, "scheduler.W001"),
        ({"ALLOWED_COMMANDS": "cleanup_tokens"}, "scheduler.E002"),
        ({"ALLOWED_COMMANDS": ["no_such_command"]}, "scheduler.W002"),
        ({"EXECUTOR": "celery"}, "scheduler.E003"),
        ({"OUTPUT_LIMIT": 10}, "scheduler.E004"),
        ({"POLL_INTERVAL": 0}, "scheduler.E005"),
        ({"SHUTDOWN_GRACE": "30"}, "scheduler.E005"),
        ({"MAX_CONCURRENT_RUNS": 0}, "scheduler.E006"),
    ],
)
def test_misconfiguration_is_reported_with_a_stable_id(setting, check_id):
    assert check_id in check_ids(**setting)
