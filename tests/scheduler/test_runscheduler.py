"""End to end: the real ``runscheduler`` process against the test database."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import F

from scheduler.models import Reason, Run, Schedule, Status
from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def runs_of(schedule: Schedule, **filters) -> list[Run]:
    return list(Run.objects.filter(schedule=schedule, **filters).order_by("scheduled_for"))


def test_schedule_added_while_running_runs_and_records_all_output(start_daemon, make_schedule):
    start_daemon()
    interval = 3
    added = time.monotonic()
    schedule = make_schedule(command="say", args=["hello"], interval=interval)

    run = wait_for(lambda: runs_of(schedule, status=Status.SUCCEEDED), interval + 2)[0]
    assert time.monotonic() - added <= interval + 2
    assert run.exit_code == 0
    assert run.reason == Reason.SCHEDULED
    assert "stdout hello 0" in run.stdout
    assert "print hello 0" in run.stdout
    assert "stderr hello 0" in run.stderr
    assert "sys.stderr hello 0" in run.stderr
    assert run.started_at >= run.scheduled_for
    assert run.finished_at >= run.started_at
    assert run.host and run.pid


def test_disabled_schedule_stops_and_deleted_schedule_keeps_history(start_daemon, make_schedule):
    start_daemon()
    schedule = make_schedule(interval=1)
    wait_for(lambda: len(runs_of(schedule)) >= 2, 5)

    schedule.enabled = False
    schedule.save()
    time.sleep(2)  # pick-up time: a fire already handed out may still finish
    settled = len(runs_of(schedule))
    time.sleep(3)
    assert len(runs_of(schedule)) == settled

    schedule_id = schedule.pk
    schedule.delete()
    history = Run.objects.filter(command="say", schedule__isnull=True)
    assert history.count() == settled
    assert not Schedule.objects.filter(pk=schedule_id).exists()


def test_failures_are_recorded_with_their_exit_codes(start_daemon, make_schedule):
    start_daemon()
    command_error = make_schedule(command="fail_with", args=["3"], interval=1)
    exception = make_schedule(command="explode", args=[], interval=1)
    hard_exit = make_schedule(command="exit_with", args=["7", "--hard"], interval=1)

    def finished(schedule):
        return runs_of(schedule, status__in=[Status.FAILED, Status.SUCCEEDED])

    assert wait_for(lambda: finished(command_error), 5)[0].exit_code == 3
    crashed = wait_for(lambda: finished(exception), 5)[0]
    assert crashed.exit_code == 1
    assert "ZeroDivisionError" in crashed.stderr
    assert "Traceback" in crashed.stderr
    assert wait_for(lambda: finished(hard_exit), 5)[0].exit_code == 7
    # os._exit in the child did not take the daemon down: it keeps scheduling.
    assert wait_for(lambda: len(finished(hard_exit)) >= 3, 6)


def test_timeout_stops_the_run_and_other_schedules_go_on(start_daemon, make_schedule):
    daemon = start_daemon()
    hanging = make_schedule(command="sleep_for", args=["60"], interval=1, timeout=1)
    healthy = make_schedule(command="say", args=["alive"], interval=1)

    timed_out = wait_for(lambda: runs_of(hanging, status=Status.TIMED_OUT), 8)[0]
    assert "sleeping 60" in timed_out.stdout
    assert "timeout" in timed_out.stderr
    assert timed_out.duration.total_seconds() < 5
    assert wait_for(lambda: len(runs_of(healthy, status=Status.SUCCEEDED)) >= 3, 6)
    assert daemon.alive()


def test_schedules_written_around_validation_are_logged_and_the_others_run(
    start_daemon, make_schedule
):
    huge_interval = make_schedule(name="huge interval", interval=60)
    host_zone = make_schedule(name="host zone", cron="* * * * *")
    huge_window = make_schedule(name="huge window", interval=60)
    fine = make_schedule(name="fine", interval=1)
    # SQLite stores any 64-bit integer; PostgreSQL's integer column stops at 2**31 - 1.
    sqlite = connection.vendor == "sqlite"
    Schedule.objects.filter(pk=huge_interval.pk).update(interval=10**12 if sqlite else 2**31 - 1)
    Schedule.objects.filter(pk=host_zone.pk).update(timezone="localtime")
    Schedule.objects.filter(pk=huge_window.pk).update(
        catch_up_window=10**15 if sqlite else 2**31 - 1, keep_days=2**31 - 1
    )
    Run.objects.create(
        schedule=huge_window,
        command="say",
        reason=Reason.SCHEDULED,
        status=Status.SUCCEEDED,
        scheduled_for=huge_window.created_at - timedelta(minutes=5),
    )
    Schedule.objects.filter(pk=huge_window.pk).update(
        created_at=F("created_at") - timedelta(hours=1)
    )

    daemon = start_daemon()
    wait_for(lambda: len(runs_of(fine)) >= 3, 10)
    assert daemon.alive()
    log = daemon.log
    assert "Schedule huge interval cannot be scheduled: The interval must be at most" in log
    assert "Schedule host zone cannot be scheduled: Timezone 'localtime' depends" in log
    assert runs_of(huge_window, reason=Reason.CATCH_UP)
    assert not runs_of(huge_interval) and not runs_of(host_zone)


def test_sigterm_exits_cleanly(start_daemon, make_schedule):
    daemon = start_daemon()
    assert daemon.stop() == 0
    assert "Scheduler stopped" in daemon.log


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_poll_interval_must_be_a_positive_number(value):
    with pytest.raises(CommandError, match="--poll-interval"):
        call_command("runscheduler", "--poll-interval", value)
