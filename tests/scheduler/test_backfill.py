"""Backfill: runs queued for a range of fire times, started by a daemon oldest first."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection

from scheduler.backfill import (
    LEAVE,
    QUEUE,
    RERUN,
    BackfillError,
    Progress,
    next_runs,
    parse_bound,
    plan,
    queue,
)
from scheduler.cli import progress_line
from scheduler.models import Reason, Run, Status
from scheduler.owners import Owner
from tests.conftest import SQLiteSteps, wait_for

FAST = {"POLL_INTERVAL": 0.2, "HEARTBEAT_INTERVAL": 1}


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_backfill_of_a_week_runs_each_day_once_and_again_nothing(start_daemon, make_schedule):
    start_daemon(settings=FAST)
    start_daemon(settings=FAST)
    schedule = make_schedule(command="say", args=["day"], cron="0 3 * * *", timezone="UTC")

    out = StringIO()

    def backfill_and_wait():
        try:
            call_command(
                "schedules",
                "backfill",
                schedule.name,
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-07",
                "--wait",
                stdout=out,
            )
        finally:
            connection.close()

    waiting = threading.Thread(target=backfill_and_wait)
    waiting.start()
    runs = Run.objects.filter(schedule=schedule, reason=Reason.BACKFILL)
    wait_for(lambda: runs.filter(status=Status.SUCCEEDED).count() == 7, 30)
    waiting.join(10)
    assert out.getvalue().splitlines()[-1] == "7 of 7 done"  # plain lines: not a terminal
    call_command(
        "schedules", "backfill", schedule.name, "--from", "2026-01-01", "--to", "2026-01-07"
    )

    days = sorted(runs.values_list("scheduled_for", flat=True))
    assert days == [datetime(2026, 1, day, 3, tzinfo=UTC) for day in range(1, 8)]
    assert runs.count() == 7
    started = sorted(runs.values_list("started_at", "scheduled_for"))
    assert [fire for _, fire in started] == days  # oldest first
    spans = sorted(runs.values_list("started_at", "finished_at"))
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


DAY = datetime(2026, 3, 1, tzinfo=UTC)


def daily(make_schedule, **fields):
    return make_schedule(cron="0 3 * * *", timezone="UTC", **fields)


def week(schedule, **options):
    start, end = parse_bound("2026-03-01", "UTC"), parse_bound("2026-03-07", "UTC", end=True)
    return queue(schedule, plan(schedule, start, end, **options))


def test_bounds_are_read_in_the_schedules_zone_and_a_date_ends_with_its_day():
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_bound("2026-03-01", "Europe/Berlin") == datetime(2026, 3, 1, tzinfo=berlin)
    end = parse_bound("2026-03-01", "Europe/Berlin", end=True)
    assert end == datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=berlin)
    assert parse_bound("2026-03-01T04:30", "UTC") == datetime(2026, 3, 1, 4, 30, tzinfo=UTC)
    with pytest.raises(BackfillError, match="not an ISO date"):
        parse_bound("yesterday", "UTC")


@pytest.mark.django_db
def test_backfill_queues_each_fire_time_once_and_again_nothing(make_schedule):
    schedule = daily(make_schedule)
    items = week(schedule)
    assert [item.action for item in items] == [QUEUE] * 7
    runs = Run.objects.filter(schedule=schedule)
    assert {(run.reason, run.status) for run in runs} == {(Reason.BACKFILL, Status.QUEUED)}
    assert sorted(runs.values_list("scheduled_for", flat=True)) == [
        DAY.replace(day=day, hour=3) for day in range(1, 8)
    ]
    assert [item.action for item in week(schedule)] == [LEAVE] * 7
    assert runs.count() == 7


@pytest.mark.django_db
def test_backfilled_fire_time_cannot_be_claimed_again_by_the_daemon(make_schedule):
    schedule = daily(make_schedule)
    week(schedule)
    fire = DAY.replace(hour=3)
    assert Run.claim(schedule.pk, fire, Reason.SCHEDULED, owner=Owner("b", 1)) is None
    assert Run.claim(schedule.pk, fire, Reason.CATCH_UP, owner=Owner("b", 1)) is None


@pytest.mark.django_db
def test_rerun_failed_queues_one_linked_run_per_failed_fire_time(make_schedule):
    schedule = daily(make_schedule)
    failed = Run.claim(schedule.pk, DAY.replace(hour=3), Reason.SCHEDULED, owner=Owner("b", 1))
    Run.objects.filter(pk=failed.pk).update(status=Status.FAILED)

    items = week(schedule, rerun_failed=True)
    assert [item.action for item in items] == [RERUN] + [QUEUE] * 6
    assert items[0].run.rerun_of_id == failed.pk
    assert [item.action for item in week(schedule, rerun_failed=True)] == [LEAVE] * 7
    rerun = Run(**{**_fields(items[0].run), "rerun_of_id": failed.pk})
    with pytest.raises(IntegrityError):
        rerun.save()  # a run is rerun once


def _fields(run: Run) -> dict:
    return {
        field.attname: getattr(run, field.attname)
        for field in Run._meta.concrete_fields
        if field.attname != "id"
    }


@pytest.mark.django_db
def test_daemon_takes_the_oldest_backfill_runs_up_to_the_concurrency(make_schedule, settings):
    schedule = daily(make_schedule)
    items = week(schedule)
    oldest = [item.run.pk for item in items]
    retry_before = DAY
    assert [row[0] for row in next_runs(retry_before)] == oldest[:1]
    settings.SCHEDULER = {"BACKFILL_CONCURRENCY": 2}
    assert [row[0] for row in next_runs(retry_before)] == oldest[:2]
    assert items[0].run.start(owner=Owner("b", 1))
    assert [row[0] for row in next_runs(retry_before)] == oldest[1:2]


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="counts SQLite's steps")
def test_choosing_backfill_runs_reads_no_more_after_a_long_history(make_schedule):
    schedule = daily(make_schedule)
    week(schedule)
    with SQLiteSteps() as short:
        next_runs(DAY)
    Run.objects.bulk_create(
        Run(
            schedule=schedule,
            command="say",
            reason=Reason.SCHEDULED,
            scheduled_for=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=n),
            status=Status.SUCCEEDED,
        )
        for n in range(3000)
    )
    with SQLiteSteps() as long:
        next_runs(DAY)
    assert long.count < short.count * 1.5, (short.count, long.count)


@pytest.mark.django_db
def test_backfill_run_waits_rather_than_exceed_the_concurrency(make_schedule):
    schedule = daily(make_schedule, overlap="allow")
    first, second = (item.run for item in week(schedule)[:2])
    assert first.start(owner=Owner("b", 1))
    assert not second.start(owner=Owner("b", 2))
    assert Run.objects.get(pk=second.pk).status == Status.QUEUED


@pytest.mark.django_db
def test_command_lists_a_dry_run_and_queues_nothing(make_schedule):
    schedule = daily(make_schedule)
    out = StringIO()
    call_command(
        "schedules",
        "backfill",
        schedule.name,
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
        "--dry-run",
        stdout=out,
    )
    assert out.getvalue().splitlines() == [
        "2026-03-01T03:00:00+00:00  would queue",
        "2026-03-02T03:00:00+00:00  would queue",
        f"Would queue 2 of 2 fire time(s) of {schedule.name}.",
    ]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_command_refuses_a_range_ending_before_it_starts(make_schedule):
    schedule = daily(make_schedule)
    with pytest.raises(CommandError, match="before its start"):
        call_command(
            "schedules", "backfill", schedule.name, "--from", "2026-03-02", "--to", "2026-03-01"
        )


def test_progress_is_plain_lines_without_a_terminal_and_a_bar_on_one():
    progress = Progress(done=3, total=7, failed=1)
    assert progress_line(progress, bar=False) == "3 of 7 done, 1 did not succeed"
    assert progress_line(progress, bar=True).startswith("[############..................] 3 of 7")
