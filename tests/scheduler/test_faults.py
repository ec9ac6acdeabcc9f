"""End to end: the daemon under kill -9, signals and a database outage."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from scheduler.models import DatabaseOutage, Heartbeat, Reason, Run, Status
from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUICK_STOP = {"SHUTDOWN_GRACE": 1.0, "KILL_GRACE": 1.0, "HEARTBEAT_INTERVAL": 1.0}


def running(schedule) -> list[Run]:
    return list(Run.objects.filter(schedule=schedule, status=Status.RUNNING))


def test_kill_9_during_a_run_is_resolved_after_restart(start_daemon, make_schedule):
    schedule = make_schedule(command="sleep_for", args=["30"], interval=2)
    first = start_daemon(settings=QUICK_STOP)
    orphan = wait_for(lambda: running(schedule), 5)[0]
    first.stop(signal.SIGKILL)
    killed_at = timezone.now()
    time.sleep(4.5)  # two fire times pass with no daemon

    start_daemon(settings=QUICK_STOP)
    orphan = wait_for(
        lambda: Run.objects.filter(pk=orphan.pk, status=Status.INTERRUPTED).first(), 5
    )
    assert "stopped or died" in orphan.stderr
    assert Run.objects.filter(schedule=schedule, scheduled_for=orphan.scheduled_for).count() == 1
    catch_up = wait_for(lambda: list(Run.objects.filter(reason=Reason.CATCH_UP)), 3)
    assert len(catch_up) == 1
    assert catch_up[0].scheduled_for > killed_at


def started(daemon, schedule) -> Run | None:
    """A run of the schedule whose command the daemon has started (its log says so)."""
    for run in running(schedule):
        if f"Run {run.pk} of {schedule.name} started" in daemon.log:
            return run
    return None


def test_sigterm_lets_a_running_command_finish_and_starts_nothing_new(start_daemon, make_schedule):
    schedule = make_schedule(command="sleep_for", args=["2"], interval=1, overlap="allow")
    daemon = start_daemon(settings={"SHUTDOWN_GRACE": 10.0})
    # A run merely claimed when SIGTERM comes is released, not started: wait for a start.
    run = wait_for(lambda: started(daemon, schedule), 5)
    daemon.process.send_signal(signal.SIGTERM)
    signalled_at = timezone.now()
    # One SIGTERM only: a second one means "stop running commands at once".
    assert daemon.process.wait(30) == 0

    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    runs = Run.objects.filter(schedule=schedule)
    assert not runs.filter(status=Status.RUNNING).exists()
    assert not runs.filter(created_at__gt=signalled_at + timedelta(seconds=0.5)).exists()
    assert Heartbeat.objects.get(pid=daemon.pid).stopped_at is not None


def test_a_fire_time_waiting_out_its_jitter_at_sigterm_runs_at_the_next_start(
    start_daemon, make_schedule
):
    # Due 5 s ago: caught up at once, then waits a random delay of up to a day.
    schedule = make_schedule(
        interval=3600, jitter=86400, created_at=timezone.now() - timedelta(hours=1, seconds=5)
    )
    daemon = start_daemon(settings=QUICK_STOP)
    waiting = wait_for(lambda: running(schedule), 5)[0]
    assert daemon.stop() == 0
    assert not Run.objects.filter(schedule=schedule).exists()

    schedule.jitter = None
    schedule.save()
    start_daemon(settings=QUICK_STOP)
    run = wait_for(
        lambda: Run.objects.filter(schedule=schedule, status=Status.SUCCEEDED).first(), 10
    )
    assert (run.reason, run.scheduled_for) == (Reason.CATCH_UP, waiting.scheduled_for)


def descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (from /proc), children first."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_frozen_daemon_woken_after_its_run_was_interrupted_stops_the_command(
    start_daemon, make_schedule
):
    settings = {"HEARTBEAT_INTERVAL": 0.5, "HEARTBEAT_TIMEOUT": 2.0, "KILL_GRACE": 1.0}
    schedule = make_schedule(command="sleep_for", args=["60"], interval=3600)
    owner = start_daemon(settings=settings)
    run = Run.claim_manual(schedule)
    wait_for(lambda: running(schedule), 5)
    # The run's command leads its own process group, below the daemon's fork server.
    [command] = wait_for(
        lambda: [pid for pid in descendants(owner.pid) if os.getpgid(pid) == pid], 5
    )
    start_daemon(settings=settings)

    owner.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: Run.objects.filter(pk=run.pk, status=Status.INTERRUPTED).exists(), 15)
        assert not process_gone(command)  # frozen daemons leave their commands going
    finally:
        owner.process.send_signal(signal.SIGCONT)
    wait_for(lambda: process_gone(command), 5)
    assert owner.alive()
    run.refresh_from_db()
    assert run.status == Status.INTERRUPTED
    assert "stopped or died" in run.stderr
    wait_for(lambda: "was ended by another process" in owner.log, 5)


def test_sigterm_interrupts_what_outlasts_the_grace_period(start_daemon, make_schedule):
    schedule = make_schedule(command="sleep_for", args=["60"], interval=1)
    daemon = start_daemon(settings=QUICK_STOP)
    run = wait_for(lambda: started(daemon, schedule), 10)
    stopping = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - stopping < 8
    run.refresh_from_db()
    assert run.status == Status.INTERRUPTED
    assert "sleeping 60" in run.stdout


def test_second_sigint_stops_running_commands_at_once(start_daemon, make_schedule):
    schedule = make_schedule(command="sleep_for", args=["60"], interval=1)
    daemon = start_daemon(settings={"SHUTDOWN_GRACE": 60.0, "KILL_GRACE": 1.0})
    run = wait_for(lambda: started(daemon, schedule), 10)
    stopping = time.monotonic()
    daemon.process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert daemon.alive()  # still waiting for the run, as the grace period says
    assert daemon.stop(signal.SIGINT) == 0
    assert time.monotonic() - stopping < 8
    run.refresh_from_db()
    assert run.status == Status.INTERRUPTED


def test_database_outage_is_survived_and_results_are_written_afterwards(
    start_daemon, make_schedule, postgres_server
):
    ticking = make_schedule(command="say", args=["tick"], interval=2)
    slow = make_schedule(command="sleep_for", args=["6"], interval=3600)
    daemon = start_daemon(settings={"HEARTBEAT_INTERVAL": 1.0})
    wait_for(lambda: Run.objects.filter(schedule=ticking).exists(), 5)
    slow_run = Run.claim_manual(slow)
    wait_for(lambda: running(slow), 5)
    connection.close()

    postgres_server.stop()
    down_at = timezone.now()
    time.sleep(30)
    starting_at = timezone.now()  # a daemon may reach the server before pg_ctl returns
    postgres_server.start()
    up_at = timezone.now()
    connection.close()

    slow_run = wait_for(
        lambda: Run.objects.filter(pk=slow_run.pk, status=Status.SUCCEEDED).first(), 20
    )
    assert "woke up" in slow_run.stdout
    catch_up = wait_for(
        lambda: list(Run.objects.filter(schedule=ticking, reason=Reason.CATCH_UP)), 10
    )
    assert len(catch_up) == 1
    assert down_at < catch_up[0].scheduled_for <= up_at + timedelta(seconds=2)
    wait_for(lambda: Run.objects.filter(schedule=ticking, created_at__gt=up_at).count() >= 3, 10)
    [outage] = DatabaseOutage.objects.all()  # for the metrics: scheduler_database_outages
    beat = Heartbeat.objects.get(kind="daemon")
    assert (outage.host, outage.pid) == (beat.host, beat.pid)
    assert down_at - timedelta(seconds=5) < outage.started_at < starting_at < outage.ended_at
    assert daemon.alive()
    fired = list(Run.objects.filter(schedule=ticking).values_list("scheduled_for", flat=True))
    assert len(fired) == len(set(fired))
    assert daemon.log.count("Database unavailable") == 1
    assert "Traceback" not in daemon.log
    wait_for(lambda: not Run.objects.filter(status=Status.RUNNING).exists(), 5)
