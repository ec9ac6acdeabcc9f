"""Keep every edit of a schedule: who, when, from where, and each field's old and new value.

A ``pre_save`` receiver reads the row as stored, ``post_save`` writes one
``ScheduleChange`` with the fields that differ, ``post_delete`` records the deletion. So
edits from admin, the command line, code-declared sync, a crontab import or plain ORM
saves are all kept; only ``QuerySet.update()`` and raw SQL pass unseen. Who made an edit
is what the surrounding :func:`changed_by` says; without one the source is ``"orm"``.
"""

from __future__ import annotations

import contextvars
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save

from .models import Schedule, ScheduleChange

# Fields whose change says nothing to a reader (``updated_at`` moves on every save).
IGNORED = frozenset({"updated_at"})

_who: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "scheduler_history_who", default=("", "orm")
)


@contextmanager
def changed_by(who: str, source: str) -> Iterator[None]:
    """Attribute the schedule edits made inside the block to ``who`` from ``source``."""
    token = _who.set((who, source))
    try:
        yield
    finally:
        _who.reset(token)


def terminal_user() -> str:
    """Return the login name of the person at this terminal, or "" if unknown."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def current() -> tuple[str, str]:
    """Return who is editing schedules now, and from where."""
    return _who.get()


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def snapshot(schedule: Schedule) -> dict[str, Any]:
    """Return the schedule's recorded fields as JSON-ready values."""
    return {
        field.attname: _json(getattr(schedule, field.attname))
        for field in Schedule._meta.concrete_fields
        if field.attname not in IGNORED and not field.primary_key
    }


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """Return ``{field: [old, new]}`` for the fields that differ."""
    return {
        field: [old.get(field), value] for field, value in new.items() if old.get(field) != value
    }


def _before_save(sender: type[Schedule], instance: Schedule, raw: bool, **kwargs: Any) -> None:
    stored = None
    if instance.pk is not None and not raw:
        stored = Schedule.objects.filter(pk=instance.pk).first()
    instance._history_before = snapshot(stored) if stored is not None else None  # type: ignore[attr-defined]


def _after_save(
    sender: type[Schedule],
    instance: Schedule,
    created: bool,
    raw: bool,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    if raw:
        return
    before = getattr(instance, "_history_before", None)
    after = snapshot(instance)
    if update_fields is not None and before is not None:
        # Only these were written; the instance's other fields may be stale.
        after = {name: value for name, value in after.items() if name in update_fields}
    changes = diff(before or {}, after)
    if not changes:
        return
    who, source = current()
    ScheduleChange.objects.create(
        schedule=instance,
        schedule_name=instance.name,
        changed_by=who,
        source=source,
        action="created" if created or before is None else "changed",
        changes=changes,
    )


def _after_delete(sender: type[Schedule], instance: Schedule, **kwargs: Any) -> None:
    who, source = current()
    ScheduleChange.objects.create(
        schedule=None,
        schedule_name=instance.name,
        changed_by=who,
        source=source,
        action="deleted",
        changes={},
    )


def connect() -> None:
    """Record schedule edits from now on (``SchedulerConfig.ready`` calls this)."""
    pre_save.connect(_before_save, sender=Schedule, dispatch_uid="scheduler.history.pre")
    post_save.connect(_after_save, sender=Schedule, dispatch_uid="scheduler.history.post")
    post_delete.connect(_after_delete, sender=Schedule, dispatch_uid="scheduler.history.delete")
