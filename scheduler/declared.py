"""Schedules declared in settings, kept in the database beside the ones made in admin.

``SCHEDULER["SCHEDULES"]`` maps a name to the fields its code owns, e.g.
``{"Nightly batch": {"command": "nightly_batch", "cron": "30 3 * * *"}}``. When a daemon
starts they are created or updated (only when a field changed, so a running daemon does
not re-plan them for nothing) and marked as defined in code; admin shows the fields the
code sets as read-only. A schedule removed from the settings is disabled, not deleted, so
its history stays, and it becomes editable in admin again.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .history import changed_by
from .models import Schedule

logger = logging.getLogger("scheduler.declared")

OWNABLE_FIELDS = frozenset(
    {
        "command", "args", "cron", "interval", "timezone", "enabled", "catch_up",
        "catch_up_window", "overlap", "timeout", "jitter", "executor", "notify", "ping_url",
        "keep_runs", "keep_days", "catch_up_runs",
    }
)  # fmt: skip


def declared_schedule(name: str, fields: dict[str, Any], existing: Schedule | None) -> Schedule:
    """The schedule as the declaration wants it (unsaved); raises ``ValidationError``."""
    unknown = set(fields) - OWNABLE_FIELDS
    if unknown:
        raise ValidationError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    schedule = existing or Schedule(name=name)
    values = dict(fields)
    if existing is not None and not existing.defined_in_code:
        # Declared (again) in code: the code wants it running unless it says otherwise,
        # even if an earlier deploy without it disabled it.
        values.setdefault("enabled", True)
    if "cron" in values and values["cron"] is None:
        values["cron"] = ""
    if values.get("cron"):
        values.setdefault("interval", None)
    if "interval" in values:
        values.setdefault("cron", "")
    for field, value in values.items():
        setattr(schedule, field, value)
    schedule.defined_in_code = True
    # Schedule.clean() covers the check constraint without a query, so this also works
    # from a system check, before the database is reachable.
    schedule.full_clean(validate_unique=False, validate_constraints=False)
    return schedule


@transaction.atomic
@changed_by('SCHEDULER["SCHEDULES"]', "code")
def sync_declared(declared: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Bring the database in line with the declarations; say what changed."""
    report: dict[str, list[str]] = {"created": [], "updated": [], "disabled": [], "invalid": []}
    existing = {s.name: s for s in Schedule.objects.filter(name__in=list(declared))}
    for name, fields in declared.items():
        current = existing.get(name)
        before = _snapshot(current)
        try:
            schedule = declared_schedule(name, fields, current)
        except ValidationError as exc:
            logger.error("Schedule %r in SCHEDULER['SCHEDULES'] is invalid: %s", name, exc)
            report["invalid"].append(name)
            continue
        if current is None:
            schedule.save()
            report["created"].append(name)
        elif _snapshot(schedule) != before:
            schedule.save()
            report["updated"].append(name)
    for schedule in Schedule.objects.filter(defined_in_code=True).exclude(name__in=list(declared)):
        schedule.enabled = False
        schedule.defined_in_code = False
        schedule.save()
        report["disabled"].append(schedule.name)
    return report


def _snapshot(schedule: Schedule | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    values = {field: getattr(schedule, field) for field in OWNABLE_FIELDS}
    values["defined_in_code"] = schedule.defined_in_code
    return values
