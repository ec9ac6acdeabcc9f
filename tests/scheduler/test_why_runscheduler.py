"""End to end: each outcome of `schedules why` produced by the real ``runscheduler``."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from scheduler.models import Reason, Run, Schedule, Status
from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def why(schedule: Schedule, start: datetime, end: datetime) -> list[dict]:
    out = StringIO()
    call_command(
        "schedules",
        "why",
        schedule.name,
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
        "--json",
        stdout=out,
    )
    return json.loads(out.getvalue())


def outcomes(rows: list[dict]) -> set[str]:
    return {row["outcome"] for row in rows}


def runs_of(schedule: Schedule, **filters) -> list[Run]:
    return list(Run.objects.filter(schedule=schedule, **filters).order_by("scheduled_for"))


def stopped_across_fire_times(start_daemon, schedule: Schedule) -> tuple[datetime, datetime]:
    """Run a daemon until the schedule ran, stop it for 3 s; return when it was down."""
    daemon = start_daemon()
    wait_for(lambda: runs_of(schedule, status=Status.SUCCEEDED), 10)
    daemon.stop()
    down = timezone.now()
    time.sleep(3)
    return down, timezone.now()


def test_fire_times_while_no_daemon_ran_read_so_then_caught_up_once_one_starts(
    start_daemon, make_schedule
):
    schedule = make_schedule(interval=1)
    down, up = stopped_across_fire_times(start_daemon, schedule)
    gap = (down + timedelta(seconds=0.5), up - timedelta(seconds=0.5))
    assert outcomes(why(schedule, *gap)) == {"no scheduler was running"}

    start_daemon()
    catch_up = wait_for(
        lambda: runs_of(schedule, reason=Reason.CATCH_UP, scheduled_for__gt=down), 10
    )[0]
    rows = why(schedule, *gap)
    assert outcomes(rows) == {"caught up"}
    assert {row["run"] for row in rows} == {catch_up.pk}


def test_with_catch_up_off_fire_times_while_no_daemon_ran_were_not_caught_up(
    start_daemon, make_schedule
):
    schedule = make_schedule(interval=1, catch_up=False)
    down, up = stopped_across_fire_times(start_daemon, schedule)
    start_daemon()
    wait_for(lambda: runs_of(schedule, scheduled_for__gt=up), 10)
    rows = why(schedule, down + timedelta(seconds=0.5), up - timedelta(seconds=0.5))
    assert outcomes(rows) == {"not caught up"}
    assert all("catch-up is off" in row["detail"] for row in rows)


def test_an_overlap_skip_names_the_run_still_going(start_daemon, make_schedule):
    schedule = make_schedule(command="sleep_for", args=["2.5"], interval=1)
    start_daemon()
    skipped = wait_for(lambda: runs_of(schedule, status=Status.SKIPPED), 10)[0]
    [row] = why(schedule, skipped.scheduled_for, skipped.scheduled_for)
    blocker = Run.objects.get(
        schedule=schedule,
        started_at__lte=skipped.created_at,
        status__in=[Status.RUNNING, Status.SUCCEEDED],
        scheduled_for__lt=skipped.scheduled_for,
    )
    assert (row["outcome"], row["run"], row["blocked_by"]) == ("skipped", skipped.pk, blocker.pk)


def test_a_pause_skips_its_fire_times_and_ends_on_time_without_catching_up(
    start_daemon, make_schedule
):
    schedule = make_schedule(interval=1)
    start_daemon()
    wait_for(lambda: runs_of(schedule, status=Status.SUCCEEDED), 10)
    out = StringIO()
    call_command(
        "schedules", "pause", schedule.name, "--for", "3s", "--reason", "deploy", stdout=out
    )
    schedule.refresh_from_db()
    paused_at, paused_until = timezone.now(), schedule.paused_until
    resumed = wait_for(lambda: runs_of(schedule, scheduled_for__gte=paused_until), 10)[0]
    assert resumed.reason == Reason.SCHEDULED
    assert not runs_of(schedule, scheduled_for__gt=paused_at, scheduled_for__lt=paused_until)
    assert not runs_of(schedule, reason=Reason.CATCH_UP, created_at__gt=paused_at)
    rows = why(schedule, paused_at + timedelta(seconds=0.2), paused_until - timedelta(seconds=0.01))
    assert outcomes(rows) == {"paused"}
    assert all(row["reason"] == "deploy" for row in rows)
    [after] = why(schedule, resumed.scheduled_for, resumed.scheduled_for)
    assert after["outcome"] == "ran"


def test_fire_times_while_disabled_name_who_disabled_it_and_when(
    start_daemon, make_schedule, admin_client, admin_user
):
    schedule = make_schedule(interval=1)
    start_daemon()
    wait_for(lambda: runs_of(schedule, status=Status.SUCCEEDED), 10)
    changelist = reverse("admin:scheduler_schedule_changelist")
    admin_client.post(changelist, {"action": "disable", "_selected_action": [schedule.pk]})
    disabled_at = timezone.now()
    time.sleep(4)  # at least three fire times inside the margins below
    admin_client.post(changelist, {"action": "enable", "_selected_action": [schedule.pk]})
    enabled_at = timezone.now()
    wait_for(lambda: runs_of(schedule, scheduled_for__gt=enabled_at), 10)
    rows = why(schedule, disabled_at + timedelta(seconds=0.5), enabled_at - timedelta(seconds=0.5))
    # Re-enabling catches up the latest missed fire time: that one reads "caught up".
    disabled = [row for row in rows if row["outcome"] == "disabled"]
    assert len(rows) - len(disabled) <= 1 and len(disabled) >= 2
    assert outcomes(rows) <= {"disabled", "caught up"}
    assert {row["by"] for row in disabled} == {admin_user.username}
