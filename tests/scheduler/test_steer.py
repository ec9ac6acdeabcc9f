"""Pausing: fire times in a pause neither run nor catch up; the pause ends on its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from scheduler.catch_up import Outcome, decide
from scheduler.models import PAUSED_INDEFINITELY, Reason, Run, Schedule
from scheduler.owners import Owner
from scheduler.steer import parse_duration, resume_at, tomorrow

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def schedules(*args: str) -> str:
    out = StringIO()
    call_command("schedules", *args, stdout=out)
    return out.getvalue()


def unsaved(**fields: object) -> Schedule:
    fields.setdefault("interval", 600)
    return Schedule(name="s", command="say", created_at=T0, **fields)


def test_a_paused_schedule_does_not_catch_up_while_paused():
    paused = unsaved(paused_until=T0 + timedelta(hours=2))
    assert decide(paused, None, T0 + timedelta(hours=1)).outcome is Outcome.PAUSED


def test_catch_up_after_a_pause_counts_from_its_end_so_paused_fire_times_never_run():
    ended = unsaved(paused_until=T0 + timedelta(minutes=35))
    assert decide(ended, None, T0 + timedelta(minutes=38)).outcome is Outcome.NOTHING_MISSED
    assert decide(ended, None, T0 + timedelta(minutes=45)).fire_time == T0 + timedelta(minutes=40)


def test_the_next_fire_time_of_a_paused_schedule_is_the_first_at_or_after_its_end():
    paused = unsaved(paused_until=T0 + timedelta(minutes=30))
    now = T0 + timedelta(minutes=5)
    assert paused.timing.next_fire_time(resume_at(paused, now)) == T0 + timedelta(minutes=30)
    assert resume_at(unsaved(), now) == now


def test_a_fire_time_inside_a_pause_is_not_claimed(make_schedule):
    schedule = make_schedule()
    now = timezone.now()
    schedule.pause(until=now + timedelta(hours=1), reason="maintenance", by="alice")
    owner = Owner.this_process()
    assert Run.claim(schedule.pk, now, Reason.SCHEDULED, owner=owner) is None
    assert Run.claim(schedule.pk, now + timedelta(hours=1), Reason.SCHEDULED, owner=owner)


def test_a_pause_needs_a_reason(make_schedule):
    with pytest.raises(ValidationError, match="reason"):
        make_schedule().pause(until=None, reason=" ", by="alice")


def test_an_indefinite_pause_lasts_until_resumed_and_resuming_ends_it_now(make_schedule):
    schedule = make_schedule()
    schedule.pause(until=None, reason="broken upstream", by="alice")
    assert schedule.paused_until == PAUSED_INDEFINITELY
    now = timezone.now()
    assert schedule.is_paused(now + timedelta(days=3650))
    schedule.resume(now)
    schedule.refresh_from_db()
    assert (schedule.paused_until, schedule.pause_reason, schedule.is_paused(now)) == (
        now,
        "",
        False,
    )


def test_durations_read_as_seconds_minutes_hours_days_and_sums():
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    for bad in ("", "2", "2x", "h", "0s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_tomorrow_is_the_next_local_midnight(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    timezone.activate("Europe/Berlin")
    try:
        now = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)  # 23:30 in Berlin, before DST
        assert tomorrow(now) == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    finally:
        timezone.deactivate()


def test_cli_pause_for_a_duration_shows_in_the_list_with_who_why_and_until(make_schedule):
    make_schedule(name="nightly")
    with time_machine.travel(T0, tick=False):
        out = schedules("pause", "nightly", "--for", "2h", "--reason", "db migration")
        assert "paused until" in out and "db migration" in out
        schedule = Schedule.objects.get(name="nightly")
        assert schedule.paused_until == T0 + timedelta(hours=2)
        [row] = json.loads(schedules("list", "--json"))
        assert "db migration" in row["paused"]
        assert "paused until" in schedules("list")


def test_cli_pause_until_a_time_and_resume(make_schedule):
    make_schedule(name="nightly")
    schedules("pause", "nightly", "--until", "2999-01-01T00:00+00:00", "--reason", "r")
    assert Schedule.objects.get().paused_until == datetime(2999, 1, 1, tzinfo=UTC)
    assert "resumed" in schedules("resume", "nightly")
    assert not Schedule.objects.get().is_paused(timezone.now())
    assert "not paused" in schedules("resume", "nightly")


def test_cli_pause_without_an_end_is_indefinite(make_schedule):
    make_schedule(name="nightly")
    assert "indefinitely" in schedules("pause", "nightly", "--reason", "r")


def test_cli_pause_refuses_a_bad_duration_a_past_end_or_no_reason(make_schedule):
    make_schedule(name="nightly")
    with pytest.raises(CommandError, match="not a duration"):
        schedules("pause", "nightly", "--for", "soon", "--reason", "r")
    with pytest.raises(CommandError, match="future"):
        schedules("pause", "nightly", "--until", "2000-01-01T00:00", "--reason", "r")
    with pytest.raises(CommandError, match="reason"):
        schedules("pause", "nightly", "--for", "1h", "--reason", "")


def test_the_list_gives_a_paused_schedules_next_run_after_its_pause(make_schedule):
    schedule = make_schedule(name="hourly", interval=3600)
    end = timezone.now() + timedelta(hours=5)
    schedule.pause(until=end, reason="r", by="alice")
    [row] = json.loads(schedules("list", "--json"))
    assert datetime.fromisoformat(row["next_run"]) >= end
    schedule.pause(until=None, reason="r", by="alice")
    [row] = json.loads(schedules("list", "--json"))
    assert row["next_run"] is None
