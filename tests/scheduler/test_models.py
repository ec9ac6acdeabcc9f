from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from scheduler.executor import ExecutionResult
from scheduler.models import Overlap, Reason, Run, Schedule, Status
from scheduler.owners import Owner
from tests.conftest import SQLiteSteps

FIRE = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ME = {"owner": Owner("test-host", 4242)}


def errors_of(**fields) -> dict[str, list[str]]:
    fields.setdefault("name", "nightly")
    fields.setdefault("command", "say")
    fields.setdefault("args", ["hello"])
    schedule = Schedule(**fields)
    with pytest.raises(ValidationError) as info:
        schedule.full_clean()
    return info.value.message_dict


@pytest.mark.django_db
class TestValidation:
    def test_valid_schedule_passes(self, make_schedule):
        assert make_schedule(cron="30 3 * * *", timezone="Europe/Berlin").pk

    def test_cron_and_interval_together_are_refused(self):
        assert "not both" in errors_of(cron="@daily", interval=60)["cron"][0]

    def test_neither_cron_nor_interval_is_refused(self):
        assert "cron expression or an interval" in errors_of()["cron"][0]

    def test_bad_cron_names_the_field_and_reason(self):
        assert "Bad hour" in errors_of(cron="0 25 * * *")["cron"][0]

    def test_zero_interval_is_refused(self):
        assert "interval" in errors_of(interval=0)

    def test_unknown_timezone_is_refused(self):
        assert (
            "Unknown timezone" in errors_of(cron="@daily", timezone="Nowhere/City")["timezone"][0]
        )

    def test_unknown_command_is_refused(self):
        assert (
            "Unknown management command" in errors_of(command="no_such", interval=5)["command"][0]
        )

    def test_dangerous_builtin_is_not_allowed_by_default(self):
        message = errors_of(command="flush", args=[], interval=5)["command"][0]
        assert "not allowed" in message
        assert "ALLOWED_COMMANDS" in message

    @override_settings(SCHEDULER={"ALLOWED_COMMANDS": ["flush"]})
    def test_explicitly_allowed_builtin_passes(self):
        Schedule(name="x", command="flush", args=["--no-input"], interval=5).full_clean()

    def test_arguments_the_command_refuses_are_refused_on_save(self):
        message = errors_of(command="cleanup_tokens", args=["--dayz", "7"], interval=5)["args"][0]
        assert "unrecognized arguments: --dayz" in message

    def test_arguments_must_be_a_list_of_strings(self):
        assert "JSON list of strings" in errors_of(args="--days 7", interval=5)["args"][0]
        assert "JSON list of strings" in errors_of(args=["--days", 7], interval=5)["args"][0]

    def test_timeout_in_thread_executor_is_refused(self):
        assert "thread" in errors_of(interval=5, executor="thread", timeout=10)["timeout"][0]

    @override_settings(SCHEDULER={"EXECUTOR": "thread"})
    def test_timeout_with_thread_as_settings_default_is_refused(self):
        assert "timeout" in errors_of(interval=5, timeout=10)

    @override_settings(SCHEDULER={"TASKS_BACKEND": "nowhere"})
    def test_tasks_executor_without_a_usable_backend_is_refused(self):
        message = errors_of(interval=5, executor="tasks")["executor"][0]
        assert "'nowhere'" in message and "cannot take runs" in message

    def test_negative_jitter_is_refused(self):
        assert "jitter" in errors_of(interval=5, jitter=-1)

    @pytest.mark.parametrize(
        ("field", "limit", "bound"),
        [
            ("interval", 31_536_000, "At most 31536000 seconds (365 days)"),
            ("catch_up_window", 31_536_000, "At most 31536000 seconds (365 days)"),
            ("timeout", 31_536_000, "At most 31536000 seconds (365 days)"),
            ("jitter", 86_400, "At most 86400 seconds (one day)"),
            ("keep_runs", 1_000_000, "At most 1000000 runs"),
            ("keep_days", 36_500, "At most 36500 days (100 years"),
        ],
    )
    def test_number_fields_are_bounded_with_the_bound_in_the_message(self, field, limit, bound):
        fields = {"interval": 60, field: limit}
        Schedule(name="x", command="say", args=["hi"], **fields).full_clean()
        for value in (limit + 1, 10**12):
            messages = errors_of(**{**fields, field: value})[field]
            assert any(message.startswith(bound) for message in messages), messages

    @pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory"])
    def test_host_dependent_timezone_is_refused(self, name):
        message = errors_of(cron="@daily", timezone=name)["timezone"][0]
        assert "depends on each host" in message

    @override_settings(TIME_ZONE="America/Chicago")
    def test_default_timezone_setting_stays_valid(self):
        Schedule(name="x", command="say", args=["hi"], cron="@daily").full_clean()

    def test_timezone_defaults_to_time_zone_setting(self):
        with override_settings(TIME_ZONE="Europe/Riga"):
            assert Schedule(name="x", command="say", interval=5).timezone == "Europe/Riga"


@pytest.mark.django_db
def test_next_fire_times_are_aware_and_in_the_schedule_timezone(make_schedule):
    schedule = make_schedule(cron="0 9 * * mon", timezone="America/New_York")
    fires = schedule.next_fire_times(datetime(2026, 11, 24, tzinfo=UTC), 2)
    assert [fire.isoformat() for fire in fires] == [
        "2026-11-30T09:00:00-05:00",
        "2026-12-07T09:00:00-05:00",
    ]


@pytest.mark.django_db
class TestClaim:
    def test_a_fire_time_is_claimed_once(self, make_schedule):
        schedule = make_schedule()
        first = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, **ME)
        assert first.status == Status.RUNNING
        assert (first.host, first.pid) == ("test-host", 4242)
        assert first.command == "say"
        assert first.args == ["hello"]
        assert Run.claim(schedule.pk, FIRE, Reason.CATCH_UP, **ME) is None
        assert Run.objects.count() == 1

    def test_overlap_skip_records_a_skipped_run(self, make_schedule):
        schedule = make_schedule()
        Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, **ME)
        later = Run.claim(schedule.pk, FIRE + timedelta(minutes=1), Reason.SCHEDULED, **ME)
        assert later.status == Status.SKIPPED
        assert later.finished_at is not None
        assert "still running" in later.stderr

    def test_a_run_going_holds_up_only_its_own_schedule(self, make_schedule):
        busy, free = make_schedule(name="busy"), make_schedule(name="free")
        Run.claim(busy.pk, FIRE, Reason.SCHEDULED, **ME)
        later = FIRE + timedelta(minutes=1)
        assert Run.claim(free.pk, later, Reason.SCHEDULED, **ME).status == Status.RUNNING
        assert Run.claim(busy.pk, later, Reason.SCHEDULED, **ME).status == Status.SKIPPED

    def test_the_schedule_row_is_locked_where_the_database_can(self, make_schedule):
        schedule = make_schedule()
        with CaptureQueriesContext(connection) as captured:
            Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, **ME)
        locking = [q["sql"] for q in captured if q["sql"].rstrip().endswith("FOR UPDATE")]
        assert len(locking) == (1 if connection.features.has_select_for_update else 0)

    @pytest.mark.skipif(connection.vendor != "sqlite", reason="counts SQLite's steps")
    @pytest.mark.parametrize(
        "claim",
        [
            lambda pk, fire: Run.claim(pk, fire, Reason.SCHEDULED, **ME),
            lambda pk, fire: Run.claim_many([(pk, fire)], Reason.SCHEDULED, **ME),
        ],
        ids=["claim", "claim_many"],
    )
    def test_a_claim_does_no_more_work_after_a_long_history_than_after_a_short_one(
        self, make_schedule, claim
    ):
        schedule = make_schedule()

        def past_runs(count: int, before: datetime) -> None:
            Run.objects.bulk_create(
                Run(
                    schedule=schedule,
                    command="say",
                    reason=Reason.SCHEDULED,
                    scheduled_for=before - timedelta(minutes=n + 1),
                    status=Status.SUCCEEDED,
                )
                for n in range(count)
            )

        def steps_of_claim(fire: datetime) -> int:
            with SQLiteSteps() as steps:
                claim(schedule.pk, fire)
            assert Run.objects.running().update(status=Status.SUCCEEDED) == 1
            return steps.count

        past_runs(5, FIRE - timedelta(days=30))
        short = steps_of_claim(FIRE)
        past_runs(3000, FIRE)
        long = steps_of_claim(FIRE + timedelta(minutes=1))
        # The look for a run still going reads the schedule's running runs, not its history.
        assert long < short * 1.5, (short, long)

    def test_overlap_allow_starts_a_second_run(self, make_schedule):
        schedule = make_schedule(overlap=Overlap.ALLOW)
        Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, **ME)
        later = Run.claim(schedule.pk, FIRE + timedelta(minutes=1), Reason.SCHEDULED, **ME)
        assert later.status == Status.RUNNING

    def test_disabled_or_deleted_schedule_is_not_claimed(self, make_schedule):
        schedule = make_schedule(enabled=False)
        assert Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, **ME) is None
        assert Run.claim(987654, FIRE, Reason.SCHEDULED, **ME) is None

    def test_manual_runs_do_not_take_a_fire_time(self, make_schedule):
        schedule = make_schedule(overlap=Overlap.ALLOW)
        manual = Run.claim_manual(schedule)
        assert manual.status == Status.QUEUED
        assert Run.claim_manual(schedule).pk != manual.pk
        assert Run.claim(schedule.pk, manual.scheduled_for, Reason.SCHEDULED, **ME) is not None

    def test_a_queued_run_starts_once(self, make_schedule):
        run = Run.claim_manual(make_schedule())
        assert run.start(**ME) is True
        assert Run.objects.get().status == Status.RUNNING
        assert Run.objects.get().start(**ME) is False

    def test_a_queued_run_of_a_busy_schedule_is_skipped(self, make_schedule):
        schedule = make_schedule()
        Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, **ME)
        run = Run.claim_manual(schedule)
        assert run.start(**ME) is True
        assert run.status == Status.SKIPPED

    @pytest.mark.parametrize(("executor", "skipped"), [("tasks", True), ("process", False)])
    def test_a_fire_time_waits_for_a_run_queued_for_workers_only(
        self, make_schedule, executor, skipped
    ):
        schedule = make_schedule(executor=executor)
        Run.claim_manual(schedule)
        run = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, **ME)
        assert (run.status == Status.SKIPPED) is skipped

    def test_history_outlives_its_schedule(self, make_schedule):
        schedule = make_schedule()
        Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, **ME)
        schedule.delete()
        run = Run.objects.get()
        assert run.schedule is None
        assert run.command == "say"


@pytest.mark.django_db
class TestFinish:
    @pytest.fixture
    def claimed(self, make_schedule):
        def claim(count: int) -> list[Run]:
            schedule = make_schedule(overlap=Overlap.ALLOW)
            fires = [FIRE + timedelta(minutes=n) for n in range(count)]
            return [Run.claim(schedule.pk, fire, Reason.SCHEDULED, **ME) for fire in fires]

        return claim

    def test_finish_many_records_each_result_and_leaves_a_run_ended_elsewhere(self, claimed):
        ok, failed, ended_elsewhere = claimed(3)
        Run.objects.filter(pk=ended_elsewhere.pk).update(status=Status.INTERRUPTED)
        results = [
            ExecutionResult(Status.SUCCEEDED, 0, "done\n", ""),
            ExecutionResult(Status.FAILED, 2, "", "broken\n"),
            ExecutionResult(Status.SUCCEEDED, 0, "late\n", ""),
        ]
        mine = Run.finish_many(list(zip([ok, failed, ended_elsewhere], results, strict=True)))
        assert mine == [True, True, False]
        stored = {run.pk: run for run in Run.objects.all()}
        assert (stored[ok.pk].status, stored[ok.pk].exit_code) == (Status.SUCCEEDED, 0)
        assert stored[ok.pk].stdout == "done\n"
        assert (stored[failed.pk].status, stored[failed.pk].stderr) == (Status.FAILED, "broken\n")
        assert stored[ok.pk].finished_at == stored[failed.pk].finished_at == ok.finished_at
        assert stored[ended_elsewhere.pk].status == Status.INTERRUPTED
        assert ended_elsewhere.status == Status.RUNNING  # as loaded: finish() reloads it

    def test_finish_of_a_run_ended_elsewhere_shows_how_it_was_ended(self, claimed):
        (run,) = claimed(1)
        Run.objects.filter(pk=run.pk).update(status=Status.INTERRUPTED)
        assert run.finish(ExecutionResult(Status.SUCCEEDED, 0, "late\n", "")) is False
        assert (run.status, run.stdout) == (Status.INTERRUPTED, "")

    def test_finish_many_takes_the_same_statements_for_two_runs_or_twenty(
        self, claimed, django_assert_num_queries
    ):
        result = ExecutionResult(Status.SUCCEEDED, 0, "", "")
        for count in (2, 20):
            runs = claimed(count)
            # A savepoint, lock the runs still running, update them, release.
            with django_assert_num_queries(4):
                assert Run.finish_many([(run, result) for run in runs]) == [True] * count


@pytest.mark.django_db
class TestRunQueries:
    def test_a_schedules_stamp_is_its_latest_claimed_fire_time_not_a_manual_run(
        self, make_schedule
    ):
        schedule, other = make_schedule(overlap="allow"), make_schedule()
        for minutes in (0, 5):
            Run.claim(schedule.pk, FIRE + timedelta(minutes=minutes), Reason.SCHEDULED, **ME)
        Run.claim_manual(schedule, **ME)
        assert Run.objects.latest_fire_times([schedule.pk, other.pk]) == {
            schedule.pk: FIRE + timedelta(minutes=5)
        }

    def test_a_daemon_takes_up_a_queued_run_once_unless_its_enqueue_got_no_task_id(
        self, make_schedule
    ):
        manual = Run.claim_manual(make_schedule())
        assert list(Run.objects.awaiting_daemon()) == [manual]
        assert manual.claim_enqueue() is True
        assert list(Run.objects.awaiting_daemon()) == []
        assert manual.claim_enqueue() is False

    def test_unnotified_ends_are_those_the_schedule_wants_mail_about(self, make_schedule):
        failing, quiet = make_schedule(), make_schedule(notify="never")
        runs = [Run.claim(s.pk, FIRE, Reason.SCHEDULED, **ME) for s in (failing, quiet)]
        for run in runs:
            run.fail("broken")
        ended = runs[0].finished_at
        window = {"ended_after": ended - timedelta(1), "ended_before": ended + timedelta(1)}
        assert list(Run.objects.unnotified(**window)) == [runs[0]]
        runs[0].claim_notification()
        assert list(Run.objects.unnotified(**window)) == []


@pytest.mark.django_db
class TestPlaceholders:
    def test_an_unknown_placeholder_is_refused_on_args(self):
        errors = errors_of(cron="10 0 * * *", command="show_run", args=["{yesterday}"])
        assert "unknown placeholder {yesterday}" in errors["args"][0]

    def test_a_format_that_is_not_strftime_is_refused_on_args(self):
        errors = errors_of(cron="10 0 * * *", command="show_run", args=["{scheduled_for:d}"])
        assert "is not a strftime format" in errors["args"][0]

    def test_the_parser_checks_the_arguments_as_expanded(self, make_schedule):
        args = ["--day", "{previous_fire:%Y-%m-%d}"]
        assert make_schedule(cron="10 0 * * *", command="show_run", args=args).pk
        errors = errors_of(cron="10 0 * * *", command="show_run", args=["--day", "{previous_fire}"])
        assert "The command refuses these arguments" in errors["args"][0]
        assert "--day" in errors["args"][0]

    def test_a_claimed_run_records_the_arguments_expanded_for_its_fire_time(self, make_schedule):
        schedule = make_schedule(
            cron="10 0 * * *",
            timezone="Europe/Berlin",
            command="show_run",
            args=["--day", "{previous_fire:%Y-%m-%d}", "{scheduled_for}", "{{literal}}"],
        )
        fire = datetime(2026, 11, 23, 23, 10, tzinfo=UTC)  # 24 November 00:10 in Berlin
        run = Run.claim(schedule.pk, fire, Reason.SCHEDULED, **ME)
        assert Run.objects.get(pk=run.pk).args == [
            "--day",
            "2026-11-23",
            "2026-11-24T00:10:00+01:00",
            "{literal}",
        ]
        assert schedule.args[1] == "{previous_fire:%Y-%m-%d}"

    def test_a_manual_run_expands_for_the_moment_it_is_asked_for(self, make_schedule, time_machine):
        time_machine.move_to(datetime(2026, 11, 24, 15, 0, tzinfo=UTC), tick=False)
        schedule = make_schedule(
            cron="10 0 * * *", command="show_run", args=["--day", "{previous_fire:%Y-%m-%d}"]
        )
        run = Run.claim_manual(schedule)
        assert run.args == ["--day", "2026-11-24"]


@pytest.mark.parametrize(
    ("enabled", "paused_until", "runs"),
    [
        (True, None, True),
        (False, None, False),
        (True, FIRE + timedelta(seconds=1), False),
        (True, FIRE, True),  # the pause ends at the fire time
    ],
)
def test_a_fire_time_is_run_only_when_enabled_and_not_paused(enabled, paused_until, runs):
    schedule = Schedule(name="nightly", command="say", enabled=enabled, paused_until=paused_until)
    assert schedule.runs_at(FIRE) is runs
