"""Keep run history bounded without operator work.

Each schedule keeps its newest ``keep_runs`` runs and none older than ``keep_days`` days
(``KEEP_RUNS``/``KEEP_DAYS`` when the schedule leaves them empty), but always its latest
claimed fire time; runs of deleted schedules follow ``KEEP_DAYS``. Rows go in small
batches, each its own short transaction, so pruning never holds a long lock over the
table the daemons write to.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import cast

from django.db import transaction
from django.db.models import (
    DO_NOTHING,
    SET_NULL,
    Count,
    ForeignObjectRel,
    Model,
    OuterRef,
    Q,
    Subquery,
)
from django.db.models.signals import post_delete, pre_delete

from .conf import conf
from .models import Reason, Run, RunQuerySet, Schedule

# Seconds between two delete batches: longer than a batch and than SQLite's busy-handler
# sleeps early on, so a claim that waited for one batch runs before the next.
PAUSE = 0.03


def prune_runs(
    now: datetime, *, batch: int = 100, max_batches: int = 100, pause: float = PAUSE
) -> int:
    """Delete up to ``batch * max_batches`` runs past their limits; return how many went.

    Each batch is one short write (``delete_runs``), then ``pause`` seconds without one:
    on SQLite, whose single writer makes a claim wait for a delete, a claim waiting in
    its busy handler gets the lock before the next batch.
    """
    budget = batch * max_batches
    deleted = 0
    for query in _expired(now):
        if deleted >= budget:
            break
        while deleted < budget:
            ids = list(query.values_list("pk", flat=True)[: min(batch, budget - deleted)])
            if not ids:
                break
            if deleted and pause:
                time.sleep(pause)
            deleted += delete_runs(ids)
    return deleted


def delete_runs(ids: list[int]) -> int:
    """Delete the runs ``ids`` in one short transaction of two statements; return how many.

    Not ``QuerySet.delete()`` where it can be helped: for the alerts' ``SET_NULL`` it
    would first load every row, output and all, while holding the write lock. References
    that are not ``SET_NULL`` (or delete signals) take Django's full deletion.
    """
    runs = Run.objects.filter(pk__in=ids)
    relations = [  # as Django's deletion collector finds them, hidden ones included
        field
        for field in Run._meta.get_fields(include_hidden=True)
        if isinstance(field, ForeignObjectRel)
        and field.auto_created
        and not field.concrete
        and (field.one_to_one or field.one_to_many)
    ]
    listened = pre_delete.has_listeners(Run) or post_delete.has_listeners(Run)
    if listened or any(relation.on_delete not in (SET_NULL, DO_NOTHING) for relation in relations):
        return runs.delete()[0]
    with transaction.atomic():
        for relation in relations:
            if relation.on_delete is SET_NULL:
                name = relation.field.name
                related = cast("type[Model]", relation.related_model)
                related._base_manager.filter(**{f"{name}__in": ids}).update(**{name: None})
        return runs._raw_delete(runs.db)


def _expired(now: datetime) -> Iterator[RunQuerySet]:
    """Yield querysets of runs past a limit, oldest first; checked lazily, one at a time."""
    latest_fire = (
        Run.objects.filter(schedule=OuterRef("schedule"))
        .fire_times()
        .order_by("-scheduled_for")
        .values("scheduled_for")[:1]
    )
    # A schedule's latest claimed fire time is its catch-up stamp and, through the unique
    # constraint, what stops that fire time from running again: it is never pruned.
    finished = (
        Run.objects.ended()
        .exclude(
            Q(schedule__isnull=False)
            & ~Q(reason=Reason.MANUAL)
            & Q(scheduled_for=Subquery(latest_fire))
        )
        .order_by("scheduled_for", "id")
    )
    default_cutoff = _cutoff(now, conf.KEEP_DAYS)
    if default_cutoff is not None:
        yield finished.filter(
            Q(schedule__isnull=True) | Q(schedule__keep_days__isnull=True),
            scheduled_for__lt=default_cutoff,
        )
    # The stubs cannot narrow a nullable field by the isnull=False filter: the casts do.
    for schedule_id, days in cast(
        "Iterable[tuple[int, int]]",
        Schedule.objects.filter(keep_days__isnull=False).values_list("id", "keep_days"),
    ):
        cutoff = _cutoff(now, days)
        if cutoff is not None:
            yield finished.filter(schedule_id=schedule_id, scheduled_for__lt=cutoff)
    limits = dict(
        cast(
            "Iterable[tuple[int, int]]",
            Schedule.objects.filter(keep_runs__isnull=False).values_list("id", "keep_runs"),
        )
    )
    smallest = min([conf.KEEP_RUNS, *limits.values()])
    crowded = (
        Run.objects.exclude(schedule__isnull=True)
        .values("schedule_id")
        .annotate(runs=Count("id"))
        .filter(runs__gt=smallest)
    )
    for row in crowded:
        keep = limits.get(row["schedule_id"], conf.KEEP_RUNS)
        if row["runs"] <= keep:
            continue
        newest = Run.objects.filter(schedule_id=row["schedule_id"]).order_by(
            "-scheduled_for", "-id"
        )
        boundary = (
            newest.values_list("scheduled_for", "id")[keep - 1 : keep].first() if keep else None
        )
        older = finished.filter(schedule_id=row["schedule_id"])
        if boundary is not None:
            older = older.filter(
                Q(scheduled_for__lt=boundary[0]) | Q(scheduled_for=boundary[0], id__lt=boundary[1])
            )
        yield older


def _cutoff(now: datetime, days: int) -> datetime | None:
    """``days`` days before ``now``; None if that is before year 1, when nothing is older.

    Validation bounds ``keep_days``, but a row written around it must not stop pruning.
    """
    try:
        return now - timedelta(days=days)
    except OverflowError:
        return None
