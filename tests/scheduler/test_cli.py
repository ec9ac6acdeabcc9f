"""The ``schedules`` command, verb by verb."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from scheduler.models import Reason, Run, Schedule, Status

pytestmark = pytest.mark.django_db


def schedules(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("schedules", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return exc.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_list_shows_each_schedule_in_words_with_next_and_last_run(make_schedule):
    make_schedule(name="cleanup", cron="30 3 * * 1-5", timezone="Europe/Berlin")
    code, out, _ = schedules("list")
    assert code == 0
    assert "cleanup" in out
    assert "At 03:30, Monday through Friday (Europe/Berlin)" in out
    assert "NEXT IN" in out


def test_list_as_json_is_for_scripts(make_schedule):
    make_schedule(name="every minute", interval=60)
    [row] = json.loads(schedules("list", "--json")[1])
    assert row["name"] == "every minute"
    assert row["when"] == "Every minute"
    assert row["last_status"] is None
    assert row["next_run"]


def test_list_shows_a_schedule_written_around_validation_without_a_next_run(make_schedule):
    bad = make_schedule(name="huge")
    make_schedule(name="fine")
    huge = 10**12 if connection.vendor == "sqlite" else 2**31 - 1
    Schedule.objects.filter(pk=bad.pk).update(interval=huge)
    rows = {row["name"]: row for row in json.loads(schedules("list", "--json")[1])}
    assert rows["huge"]["next_run"] is None
    assert rows["fine"]["next_run"] is not None


def test_run_records_a_manual_run_streams_output_and_passes_the_exit_code(make_schedule):
    make_schedule(name="failing", command="fail_with", args=["3"])
    code, out, err = schedules("run", "failing")
    run = Run.objects.get()
    assert code == 3
    assert (run.reason, run.status, run.exit_code) == (Reason.MANUAL, Status.FAILED, 3)
    assert "about to fail" in out
    assert "CommandError: failing on purpose with 3" in err
    assert f"Run #{run.pk}: Failed (exit code 3)" in err


def test_run_of_a_successful_command_exits_0(make_schedule):
    make_schedule(name="hello")
    code, out, _ = schedules("run", "hello")
    assert code == 0
    assert "print hello 0" in out


def test_test_runs_without_recording(make_schedule):
    make_schedule(name="hello", executor="thread")
    code, out, err = schedules("test", "hello")
    assert code == 0
    assert "stdout hello 0" in out
    assert "Not recorded" in err
    assert not Run.objects.exists()


def test_runs_lists_recent_runs(make_schedule):
    make_schedule(name="hello")
    schedules("run", "hello")
    rows = json.loads(schedules("runs", "hello", "--json")[1])
    assert [(row["reason"], row["status"]) for row in rows] == [("manual", "succeeded")]


@pytest.mark.parametrize(
    ("now", "offset"),
    [
        (datetime(2026, 11, 24, 12, 0, tzinfo=UTC), "+01:00"),
        (datetime(2027, 7, 1, 12, 0, tzinfo=UTC), "+02:00"),
    ],
    ids=["winter", "summer"],
)
def test_preview_shows_fire_times_in_the_timezone(time_machine, now, offset):
    time_machine.move_to(now, tick=False)
    code, out, _ = schedules("preview", "30 2 * * *", "--timezone", "Europe/Berlin", "--count", "2")
    assert code == 0
    day = now.date()
    assert out.splitlines() == [
        "30 2 * * *: At 02:30 (Europe/Berlin)",
        f"{day + timedelta(days=1)}T02:30:00{offset}",
        f"{day + timedelta(days=2)}T02:30:00{offset}",
    ]


def test_preview_refuses_a_bad_expression_with_the_reason():
    with pytest.raises(CommandError, match="Bad hour"):
        schedules("preview", "0 25 * * *")


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(CommandError, match="No schedule named 'nope'"):
        schedules("run", "nope")


def test_run_tells_the_command_its_run_and_records_the_expanded_arguments(make_schedule):
    make_schedule(name="daily", cron="10 0 * * *", command="show_run", args=["{scheduled_for}"])
    code, out, _ = schedules("run", "daily")
    run = Run.objects.get()
    assert code == 0
    assert f"run: {run.pk} {run.scheduled_for.isoformat()} manual daily\n" in out
    assert run.args == [run.scheduled_for.isoformat()]
    assert f"args: {run.scheduled_for.isoformat()} day=None" in out


def test_test_expands_the_arguments_and_is_no_run(make_schedule, time_machine):
    time_machine.move_to(datetime(2026, 11, 24, 15, 0, tzinfo=UTC), tick=False)
    make_schedule(
        name="daily", cron="10 0 * * *", command="show_run", args=["--day", "{previous_fire:%F}"]
    )
    code, out, _ = schedules("test", "daily")
    assert code == 0
    assert "run: none\n" in out
    assert "args:  day=2026-11-24" in out
