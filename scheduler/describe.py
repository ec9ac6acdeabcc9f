"""Schedules and runs in words (and colours), for admin, its timeline and the command line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cron_descriptor import ExpressionDescriptor, FormatException, Options

from .models import Status
from .timing import TimingError, expand_cron

if TYPE_CHECKING:
    from .models import Schedule

# One colour per status, so a badge in admin and a bar on the timeline mean the same.
STATUS_COLOURS: dict[str, str] = {
    Status.QUEUED: "#6c757d",
    Status.RUNNING: "#0d6efd",
    Status.SUCCEEDED: "#198754",
    Status.FAILED: "#dc3545",
    Status.TIMED_OUT: "#fd7e14",
    Status.INTERRUPTED: "#6f42c1",
    Status.SKIPPED: "#adb5bd",
}
UNKNOWN_COLOUR = "#6c757d"


def status_label(status: str) -> str:
    """The status's label, or the raw value for one this version does not know."""
    return Status(status).label if status in Status.values else status


def command_line(command: str, args: Sequence[object] | None) -> str:
    """A command and its argv as one line, for display (never run through a shell)."""
    return " ".join([command, *(str(arg) for arg in args or [])])


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
        return str(ExpressionDescriptor(expanded, options).get_description())
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


def relative(seconds: float) -> str:
    """A short "how soon": ``42 s``, ``5 min``, ``2 h 10 min``, ``3 days``."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days = seconds // 86400
    return "1 day" if days == 1 else f"{days} days"
