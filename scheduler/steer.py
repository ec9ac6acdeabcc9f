"""Pause and resume schedules, and say how they are paused: shared by admin and the CLI."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.utils import timezone as dj_timezone

from .models import Schedule

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``30m``, ``2h``, ``1d``, ``1w`` or a sum such as ``1h30m``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 2h, 1d or 1h30m.")
    seconds = sum(int(number) * UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError("The duration must be positive.")
    return timedelta(seconds=seconds)


def parse_moment(text: str) -> datetime:
    """Parse an ISO 8601 date or date and time; naive ones are in the current timezone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time such as 2026-03-01T14:00.") from None
    if moment.tzinfo is None:
        moment = dj_timezone.make_aware(moment)
    return moment


def tomorrow(now: datetime) -> datetime:
    """Return the next local midnight after ``now`` (in the current timezone)."""
    local = dj_timezone.localtime(now)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return dj_timezone.make_aware(midnight.replace(tzinfo=None))


def resume_at(schedule: Schedule, now: datetime) -> datetime:
    """Return when the schedule's next fire time is looked for: now, or its pause's end."""
    if schedule.paused_until is not None and schedule.paused_until > now:
        # A fire time exactly at the end of the pause runs: look from just before it.
        return schedule.paused_until - timedelta(microseconds=1)
    return now


def pause_state(schedule: Schedule, now: datetime) -> str:
    """Return "" if ``schedule`` runs, else who paused it, why and until when."""
    if not schedule.is_paused(now):
        return ""
    assert schedule.paused_until is not None
    until = (
        "indefinitely"
        if schedule.paused_indefinitely
        else f"until {dj_timezone.localtime(schedule.paused_until):%Y-%m-%d %H:%M:%S}"
    )
    by = schedule.paused_by or "unknown"
    return f"paused {until} by {by}: {schedule.pause_reason}"
