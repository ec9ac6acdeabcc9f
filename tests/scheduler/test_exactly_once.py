"""End to end: several real daemons on one database run every fire time exactly once."""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from jobs.models import DailyStat
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


def daily_stats_down_three_days(make_schedule, **fields) -> tuple[list[datetime], list[date]]:
    """A daily stats schedule whose daemon was down across its last three fire times.

    Returns those fire times and the day each one's run must compute (its previous fire).
    """
    now = timezone.now()
    schedule = make_schedule(
        name="Daily stats",
        command="compute_daily_stats",
        args=["--date", "{previous_fire:%Y-%m-%d}"],
        cron="10 0 * * *",
        catch_up_runs="each",
        created_at=now - timedelta(days=30),
        **fields,
    )
    timing = schedule.timing
    missed = [timing.latest_at_or_before(now, now - timedelta(days=2))]
    for _ in range(3):
        missed.insert(0, timing.previous_fire_time(missed[0]))
    stamp, missed = missed[0], missed[1:]
    Run.objects.create(
        schedule=schedule,
        command=schedule.command,
        args=schedule.expanded_args(stamp),
        reason=Reason.SCHEDULED,
        status=Status.SUCCEEDED,
        scheduled_for=stamp,
    )
    days = [timing.previous_fire_time(fire).date() for fire in missed]  # TIME_ZONE is UTC
    return missed, days


def assert_each_missed_day_computed_once(missed: list[datetime], days: list[date]) -> None:
    runs = list(Run.objects.filter(reason=Reason.CATCH_UP).order_by("scheduled_for"))
    assert [run.scheduled_for for run in runs] == missed
    assert [run.args for run in runs] == [["--date", f"{day:%Y-%m-%d}"] for day in days]
    assert [run.status for run in runs] == [Status.SUCCEEDED] * 3
    for run, day in zip(runs, days, strict=True):
        assert f"Stats for {day:%Y-%m-%d}:" in run.stdout
    assert sorted(DailyStat.objects.values_list("date", flat=True)) == days
    assert not Run.objects.filter(status=Status.SKIPPED).exists()


def test_a_daemon_down_three_days_computes_each_days_stats_for_its_own_date(
    start_daemon, make_schedule
):
    missed, days = daily_stats_down_three_days(make_schedule)

    start_daemon()
    wait_for(
        lambda: Run.objects.filter(reason=Reason.CATCH_UP, status=Status.SUCCEEDED).count() == 3, 30
    )

    assert_each_missed_day_computed_once(missed, days)
    catch_up = list(Run.objects.filter(reason=Reason.CATCH_UP).order_by("scheduled_for"))
    for earlier, later in itertools.pairwise(catch_up):
        assert earlier.finished_at <= later.started_at, "runs of a skip schedule overlapped"


def test_two_daemons_catching_up_each_missed_day_run_each_once(start_daemon, make_schedule):
    # Jitter keeps each run going a while, so the daemons meet while one is busy.
    missed, days = daily_stats_down_three_days(make_schedule, jitter=2)

    start_daemon()
    start_daemon()
    wait_for(
        lambda: Run.objects.filter(reason=Reason.CATCH_UP, status=Status.SUCCEEDED).count() == 3, 40
    )
    time.sleep(2)

    assert_each_missed_day_computed_once(missed, days)


def test_a_daemon_stopped_while_catching_up_each_resumes_with_the_rest(start_daemon, make_schedule):
    now = timezone.now()
    schedule = make_schedule(
        interval=3600, command="sleep_for", args=["2"], catch_up_runs="each",
        created_at=now - timedelta(hours=3, minutes=30),
    )  # fmt: skip
    missed = fire_times(schedule, schedule.created_at + timedelta(seconds=1), now)
    assert len(missed) == 3

    first = start_daemon()
    wait_for(lambda: Run.objects.filter(scheduled_for=missed[1], status=Status.RUNNING), 20)
    first.stop()  # lets the run going finish, claims nothing more
    assert not Run.objects.filter(scheduled_for=missed[2]).exists()

    second = start_daemon()
    wait_for(lambda: Run.objects.filter(scheduled_for=missed[2], status=Status.SUCCEEDED), 20)

    runs = list(Run.objects.filter(schedule=schedule).order_by("scheduled_for"))
    assert [(run.scheduled_for, run.reason, run.status) for run in runs] == [
        (fire, Reason.CATCH_UP, Status.SUCCEEDED) for fire in missed
    ]
    assert [run.pid for run in runs] == [first.pid, first.pid, second.pid]


def runs_by_daemon(schedules, start: datetime, end: datetime) -> dict[int, set[int]]:
    """Return, by schedule id, the pids of the daemons that ran its fire times in [start, end]."""
    pids: dict[int, set[int]] = {schedule.pk: set() for schedule in schedules}
    for schedule_id, pid in Run.objects.filter(
        schedule__in=schedules, scheduled_for__gte=start, scheduled_for__lte=end
    ).values_list("schedule_id", "pid"):
        pids[schedule_id].add(pid)
    return pids


DIVIDED = "other daemons fire the rest"
ALONE = "Firing every schedule"


def test_two_daemons_divide_the_schedules_and_one_takes_over_from_a_killed_one(
    start_daemon, make_schedule
):
    schedules = [make_schedule(interval=1, args=[str(n)], executor="thread") for n in range(6)]
    fast = {"HEARTBEAT_INTERVAL": 0.5, "HEARTBEAT_TIMEOUT": 2.0}
    first, second = start_daemon(settings=fast), start_daemon(settings=fast)
    wait_for(lambda: DIVIDED in first.log and DIVIDED in second.log, 20)
    divided_from = timezone.now()
    time.sleep(4)
    divided_to = timezone.now() - timedelta(seconds=1)

    pids = runs_by_daemon(schedules, divided_from, divided_to)
    assert all(len(ran_by) == 1 for ran_by in pids.values()), pids  # no race for a claim
    assert set().union(*pids.values()) == {first.pid, second.pid}
    for schedule in schedules:
        assert_each_fire_time_once(schedule, divided_from, divided_to, at_least=3)

    second.stop(signal.SIGKILL)
    wait_for(lambda: ALONE in first.log, 10)  # gone from this host: seen at the next beat
    alone_from = timezone.now() + timedelta(seconds=1)  # its share's fire times caught up
    time.sleep(4)
    alone_to = timezone.now() - timedelta(seconds=1)

    assert runs_by_daemon(schedules, alone_from, alone_to) == {
        schedule.pk: {first.pid} for schedule in schedules
    }
    for schedule in schedules:
        assert_each_fire_time_once(schedule, alone_from, alone_to, at_least=2)
    assert "Traceback" not in first.log


def test_a_daemon_shutting_down_hands_its_schedules_over_while_it_finishes_its_runs(
    start_daemon, make_schedule
):
    schedules = [make_schedule(interval=1, args=[str(n)], executor="thread") for n in range(4)]
    # Its heartbeat stays fresh for the whole test: only its "stopped firing" hands over.
    slow = {"HEARTBEAT_INTERVAL": 0.5, "HEARTBEAT_TIMEOUT": 10.0, "SHUTDOWN_GRACE": 8.0}
    first, second = start_daemon(settings=slow), start_daemon(settings=slow)
    wait_for(lambda: DIVIDED in first.log and DIVIDED in second.log, 30)
    share = re.search(r"whose id % 2 == (\d)", second.log)
    busy = make_schedule(command="sleep_for", args=["20"], interval=1)
    if busy.pk % 2 != int(share.group(1)):
        busy = make_schedule(command="sleep_for", args=["20"], interval=1)
    wait_for(lambda: Run.objects.filter(schedule=busy, status=Status.RUNNING).exists(), 10)

    os.kill(second.pid, signal.SIGTERM)
    stopping_at = timezone.now()
    wait_for(lambda: ALONE in first.log, 3)
    assert second.alive()  # still finishing its run: its heartbeat did not hand over
    time.sleep(3)

    assert Run.objects.get(schedule=busy, status=Status.RUNNING).pid == second.pid
    taken_over = runs_by_daemon(schedules, stopping_at + timedelta(seconds=1.5), timezone.now())
    assert taken_over == {schedule.pk: {first.pid} for schedule in schedules}
    for schedule in schedules:
        assert_each_fire_time_once(
            schedule,
            stopping_at - timedelta(seconds=2),
            timezone.now() - timedelta(seconds=1),
            at_least=3,
        )
