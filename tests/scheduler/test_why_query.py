"""`schedules why`: the outcome of each fire time, read from the database."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from scheduler.models import Heartbeat, Reason, Run, Schedule, Status

pytestmark = pytest.mark.django_db


def why(*args: str) -> str:
    out = StringIO()
    call_command("schedules", "why", *args, stdout=out)
    return out.getvalue()


def test_why_lists_each_fire_time_of_the_last_day_with_its_outcome(make_schedule):
    schedule = make_schedule(name="hourly", interval=3600)
    now = timezone.now()
    created = now - timedelta(hours=3, minutes=30)
    Schedule.objects.filter(pk=schedule.pk).update(created_at=created)
    schedule.refresh_from_db()
    first, second, third = schedule.timing.next_fire_times(created, 3)
    Heartbeat.objects.create(
        host="h",
        pid=1,
        started_at=created,
        last_beat=second + timedelta(minutes=5),
        stopped_at=second + timedelta(minutes=5),
    )
    Run.objects.create(
        schedule=schedule,
        command="say",
        reason=Reason.SCHEDULED,
        scheduled_for=first,
        status=Status.SUCCEEDED,
        started_at=first,
        finished_at=first,
    )
    Run.objects.create(
        schedule=schedule,
        command="say",
        reason=Reason.SCHEDULED,
        scheduled_for=second,
        status=Status.FAILED,
        started_at=second,
        finished_at=second,
    )
    rows = json.loads(why("hourly", "--json"))
    assert [(row["fire_time"], row["outcome"]) for row in rows] == [
        (first.isoformat(), "ran"),
        (second.isoformat(), "ran"),
        (third.isoformat(), "no scheduler was running"),
    ]
    assert rows[1]["status"] == "failed"
    assert "no scheduler was running" in why("hourly")
    [only] = json.loads(
        why("hourly", "--at", (second + timedelta(minutes=1)).isoformat(), "--json")
    )
    assert only["fire_time"] == second.isoformat()
    ranged = json.loads(
        why("hourly", "--from", first.isoformat(), "--to", second.isoformat(), "--json")
    )
    assert len(ranged) == 2
