"""End to end: several real daemons on one database run every fire time exactly once."""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from scheduler.models import Reason, Run, Status
from tests.conftest import assert_each_fire_time_once, fire_times, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_two_then_three_daemons_run_each_fire_time_exactly_once(start_daemon, make_schedule):
    schedules = [
        make_schedule(interval=1, args=["a"]),
        make_schedule(interval=1, args=["b"], executor="thread"),
        make_schedule(interval=2, args=["c"]),
        make_schedule(interval=2, args=["d"], executor="thread"),
    ]
    daemons = [start_daemon(), start_daemon()]
    window_start = timezone.now() + timedelta(seconds=1)
    time.sleep(15)
    daemons.append(start_daemon())
    time.sleep(15)
    window_end = timezone.now() - timedelta(seconds=2)
    time.sleep(2)  # let the last fire times of the window finish

    for schedule in schedules:
        assert_each_fire_time_once(schedule, window_start, window_end, at_least=13)
        # Before the window, a slow first run (cold imports) may rightly make the next
        # fire time skip; inside it, every run succeeds.
        in_window = Run.objects.filter(
            schedule=schedule, scheduled_for__gte=window_start, scheduled_for__lte=window_end
        )
        statuses = Counter(in_window.values_list("status", flat=True))
        assert set(statuses) == {Status.SUCCEEDED}
    assert len(set(Run.objects.values_list("pid", flat=True))) >= 2  # the work was shared
    for daemon in daemons:
        assert "database is locked" not in daemon.log
        assert "Traceback" not in daemon.log


def test_overlap_skip_holds_across_two_daemons(start_daemon, make_schedule):
    schedule = make_schedule(command="sleep_for", args=["3"], interval=1)
    start_daemon()
    start_daemon()
    time.sleep(9)

    runs = list(Run.objects.filter(schedule=schedule).order_by("scheduled_for"))
    skipped = [run for run in runs if run.status == Status.SKIPPED]
    executed = [run for run in runs if run.status != Status.SKIPPED]
    assert len(skipped) >= 4
    assert all("still running" in run.stderr for run in skipped)
    assert len(executed) >= 2
    now = timezone.now()
    spans = sorted((run.started_at, run.finished_at or now) for run in executed)
    for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= previous_end, "two runs of a skip schedule overlapped"


def test_restart_after_missed_fire_times_catches_up_once(start_daemon, make_schedule):
    schedule = make_schedule(interval=2)
    first = start_daemon()
    wait_for(lambda: Run.objects.filter(schedule=schedule).exists(), 5)
    first.stop()
    stopped_at = timezone.now()
    time.sleep(5)  # two or three fire times pass with no daemon

    second = start_daemon()
    started = re.search(r"^(\S+ \S+) INFO scheduler.daemon: Scheduler started", second.log, re.M)
    # The log stamps local time; Django sets both processes' TZ to TIME_ZONE.
    started_at = datetime.strptime(started.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
    catch_up = wait_for(
        lambda: list(Run.objects.filter(schedule=schedule, reason=Reason.CATCH_UP)), 3
    )
    time.sleep(2)

    assert len(catch_up) == 1
    missed = fire_times(schedule, stopped_at, started_at)
    assert len(missed) >= 2
    # The daemon plans a moment before it logs that it started: a fire time falling in
    # between is run normally, and catch-up takes the one before it.
    assert catch_up[0].scheduled_for in missed[-2:]
    assert abs((catch_up[0].created_at - started_at).total_seconds()) <= 1
    assert Run.objects.filter(schedule=schedule, reason=Reason.CATCH_UP).count() == 1
    fired = set(Run.objects.filter(schedule=schedule).values_list("scheduled_for", flat=True))
    after_catch_up = fire_times(
        schedule, catch_up[0].scheduled_for, timezone.now() - timedelta(seconds=1)
    )
    assert set(after_catch_up) <= fired, "a fire time after the catch-up was lost"
