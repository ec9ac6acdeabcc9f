"""What the ``schedules`` command shows and does, kept apart from argument parsing.

Rows are plain dicts so the same data prints as a table for people and as JSON for
scripts.
"""

from __future__ import annotations

import shutil
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError

from . import backfill
from .describe import command_line, describe_cron, describe_timing, relative
from .models import Run, Schedule, Status
from .steer import pause_state, resume_at
from .timing import Timing, TimingError, get_zone

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django_stubs_ext import WithAnnotations

    from .models import LastRun


def find_schedule(name: str) -> Schedule:
    schedule = Schedule.objects.filter(name=name).first()
    if schedule is None:
        raise CommandError(f"No schedule named {name!r}; `manage.py schedules list` shows them.")
    return schedule


def schedule_rows(now: datetime) -> list[dict[str, Any]]:
    rows = []
    # Spelled here: the plugin resolves an annotated model only where it is written.
    schedules: QuerySet[WithAnnotations[Schedule, LastRun]] = Schedule.objects.with_last_run()
    for schedule in schedules:
        try:
            runs = schedule.enabled and not schedule.paused_indefinitely
            fires = schedule.next_fire_times(resume_at(schedule, now), 1) if runs else []
        except TimingError:
            fires = []
        rows.append(
            {
                "name": schedule.name,
                "command": command_line(schedule.command, schedule.args),
                "when": describe_timing(schedule),
                "enabled": schedule.enabled,
                "next_run": fires[0].isoformat() if fires else None,
                "next_run_in": relative((fires[0] - now).total_seconds()) if fires else None,
                "last_status": schedule.last_status,
                "last_run": schedule.last_run_at.isoformat() if schedule.last_run_at else None,
                "paused": pause_state(schedule, now) or None,
            }
        )
    return rows


def run_rows(schedule: Schedule, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "id": run.pk,
            "scheduled_for": run.scheduled_for.isoformat(),
            "reason": run.reason,
            "status": run.status,
            "exit_code": run.exit_code,
            "duration": round(run.duration.total_seconds(), 3) if run.duration else None,
            "host": run.host,
        }
        for run in schedule.runs.order_by("-scheduled_for", "-id")[:limit]
    ]


def preview(expression: str, zone: str, after: datetime, count: int) -> dict[str, Any]:
    try:
        timing = Timing(cron=expression, timezone=zone)
    except TimingError as exc:
        raise CommandError(str(exc)) from None
    local = [fire.astimezone(get_zone(zone)) for fire in timing.next_fire_times(after, count)]
    return {
        "expression": timing.cron,
        "description": describe_cron(expression),
        "timezone": zone,
        "next": [moment.isoformat() for moment in local],
    }


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """Columns sized to their content, the widest squeezed to fit the terminal."""
    if not rows:
        return "(none)"
    cells = [[_cell(row[key]) for key, _ in columns] for row in rows]
    headers = [title for _, title in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    room = shutil.get_terminal_size((120, 24)).columns - 2 * (len(columns) - 1)
    while sum(widths) > room and max(widths) > 12:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(row, widths) for row in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _line(values: list[str], widths: list[int]) -> str:
    parts = [
        value if len(value) <= width else value[: width - 1] + "…"
        for value, width in zip(values, widths, strict=True)
    ]
    return "  ".join(part.ljust(width) for part, width in zip(parts, widths, strict=True)).rstrip()


def exit_status(run: Run) -> int:
    """The command's own exit code; 1 when it has none (refused, stopped, skipped)."""
    if run.status == Status.SUCCEEDED:
        return 0
    return run.exit_code if run.exit_code is not None and run.exit_code > 0 else 1


def backfill_line(item: backfill.Item, zone: tzinfo, dry_run: bool) -> str:
    """One fire time of a backfill and what was (or would be) done with it."""
    when = item.fire_time.astimezone(zone).isoformat()
    existing = item.existing
    had = f"run #{existing.pk} {existing.status}" if existing is not None else ""
    if item.action == backfill.LEAVE:
        return f"{when}  left alone: has {had}"
    verb = "would rerun" if dry_run else "rerun"
    if item.action == backfill.QUEUE:
        verb = "would queue" if dry_run else "queued"
    queued = f" as run #{item.run.pk}" if item.run is not None else ""
    return f"{when}  {verb}{queued}" + (f" (after {had})" if had else "")


def progress_line(progress: backfill.Progress, *, bar: bool) -> str:
    """``N of M done``, with a text bar for a terminal."""
    text = f"{progress.done} of {progress.total} done"
    if progress.failed:
        text += f", {progress.failed} did not succeed"
    if not bar:
        return text
    width = 30
    filled = width * progress.done // max(progress.total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {text}"
