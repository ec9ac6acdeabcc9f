"""Backfill: runs queued for a range of fire times, started by a daemon oldest first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from scheduler.models import Reason, Run, Status
from tests.conftest import wait_for

FAST = {"POLL_INTERVAL": 0.2, "HEARTBEAT_INTERVAL": 1}


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_backfill_of_a_week_runs_each_day_once_and_again_nothing(start_daemon, make_schedule):
    start_daemon(settings=FAST)
    start_daemon(settings=FAST)
    schedule = make_schedule(command="say", args=["day"], cron="0 3 * * *", timezone="UTC")

    call_command(
        "schedules", "backfill", schedule.name, "--from", "2026-01-01", "--to", "2026-01-07"
    )
    runs = Run.objects.filter(schedule=schedule, reason=Reason.BACKFILL)
    wait_for(lambda: runs.filter(status=Status.SUCCEEDED).count() == 7, 30)
    call_command(
        "schedules", "backfill", schedule.name, "--from", "2026-01-01", "--to", "2026-01-07"
    )

    days = sorted(runs.values_list("scheduled_for", flat=True))
    assert days == [datetime(2026, 1, day, 3, tzinfo=UTC) for day in range(1, 8)]
    assert runs.count() == 7
    started = sorted(runs.values_list("started_at", "scheduled_for"))
    assert [fire for _, fire in started] == days  # oldest first, one at a time
