"""Schedules in words, for admin and the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cron_descriptor import ExpressionDescriptor, FormatException, Options

from .timing import TimingError, expand_cron

if TYPE_CHECKING:
    from .models import Schedule


def describe_cron(expression: str) -> str:
    """``"30 3 * * 1-5"`` → ``"At 03:30, Monday through Friday"``."""
    try:
        expanded = expand_cron(expression)
    except TimingError as exc:
        return f"invalid: {exc}"
    options = Options()
    options.use_24hour_time_format = True
    options.day_of_week_start_index_zero = True
    try:
        return ExpressionDescriptor(expanded, options).get_description()
    except (FormatException, ValueError, KeyError):
        return expanded


def describe_interval(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return "Every second" if seconds == 1 else f"Every {seconds} seconds"


def describe_timing(schedule: Schedule) -> str:
    if schedule.interval is not None:
        return describe_interval(schedule.interval)
    return f"{describe_cron(schedule.cron)} ({schedule.timezone})"
