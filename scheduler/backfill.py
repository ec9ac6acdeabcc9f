"""Backfill: queue runs for a schedule's fire times in a past (or any) range.

``schedules backfill`` and admin's backfill form only *queue* runs (``reason="backfill"``,
``status="queued"``); a running daemon starts them, oldest fire time first and
``BACKFILL_CONCURRENCY`` (default 1) at a time per schedule (``next_runs``).

Each fire time gets at most one run: a backfill run takes its fire time under the same
unique constraint as scheduled and catch-up runs, so a fire time that already has a run
is left alone, and a second identical backfill queues nothing. ``rerun_failed`` queues a
new run for a fire time whose latest run failed, timed out or was interrupted, linked to
it by ``rerun_of``; a run is rerun at most once (a unique constraint), so the rule
"once per fire time" is kept for everything but these explicit reruns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from .conf import conf
from .models import PROBLEM_STATUSES, Executor, Reason, Run, Schedule, Status
from .timing import get_zone

# More fire times than this in one request is a mistake (an interval schedule over years).
MAX_FIRE_TIMES = 10_000

QUEUE = "queue"
RERUN = "rerun"
LEAVE = "leave"


class BackfillError(ValueError):
    """A backfill request that cannot be done; the message says why."""


@dataclass(frozen=True)
class Item:
    """One fire time of a backfill and what happens to it."""

    fire_time: datetime
    action: str  # QUEUE, RERUN or LEAVE
    existing: Run | None = None  # the latest run of the fire time, if any
    run: Run | None = None  # the run queued for it


def parse_bound(text: str, zone_name: str, *, end: bool = False) -> datetime:
    """An ISO date or date-time in the schedule's timezone; a date as ``end`` means its
    whole day (up to midnight of the next one, exclusive)."""
    zone = get_zone(zone_name)
    text = text.strip()
    try:
        if "T" not in text and " " not in text:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time())
            moment = moment.replace(tzinfo=zone)
            return moment - timedelta(microseconds=1) if end else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BackfillError(
            f"{text!r} is not an ISO date or date-time (2026-03-01 or 2026-03-01T04:00)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def fire_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's fire times in [start, end], oldest first."""
    if end < start:
        raise BackfillError("The end of the range is before its start.")
    fires = []
    for fire in schedule.timing.iter_after(start - timedelta(microseconds=1)):
        if fire > end:
            break
        fires.append(fire)
        if len(fires) > MAX_FIRE_TIMES:
            raise BackfillError(
                f"More than {MAX_FIRE_TIMES} fire times in that range; backfill a shorter one."
            )
    return fires


def plan(
    schedule: Schedule, start: datetime, end: datetime, *, rerun_failed: bool = False
) -> list[Item]:
    """What a backfill of [start, end] would do for each fire time (nothing is written)."""
    fires = fire_times(schedule, start, end)
    latest: dict[datetime, Run] = {}
    existing = (
        Run.objects.filter(schedule=schedule, scheduled_for__gte=start, scheduled_for__lte=end)
        .exclude(reason=Reason.MANUAL)
        .order_by("id")
    )
    for run in existing:
        latest[run.scheduled_for] = run
    items = []
    for fire in fires:
        had = latest.get(fire)
        if had is None:
            items.append(Item(fire, QUEUE))
        elif rerun_failed and had.status in PROBLEM_STATUSES:
            items.append(Item(fire, RERUN, had))
        else:
            items.append(Item(fire, LEAVE, had))
    return items


def queue(schedule: Schedule, items: list[Item], now: datetime | None = None) -> list[Item]:
    """Queue the runs ``plan`` decided; a fire time taken meanwhile is left alone."""
    now = now or timezone.now()
    done = []
    for item in items:
        if item.action == LEAVE:
            done.append(item)
            continue
        rerun_of = item.existing if item.action == RERUN else None
        run = Run.plan(schedule, Reason.BACKFILL, item.fire_time, now=now, rerun_of=rerun_of)
        if run is None:
            done.append(Item(item.fire_time, LEAVE, item.existing))
            continue
        done.append(Item(item.fire_time, item.action, item.existing, run))
    return done


def oldest_queued(retry_before: datetime) -> QuerySet[Run, int]:
    """A subquery of each schedule's oldest queued backfill run (the daemon's cheap test
    for "any backfill waiting?", inside the query for queued runs)."""
    queued = Run.objects.awaiting_daemon(retry_before).filter(reason=Reason.BACKFILL)
    oldest = queued.filter(schedule_id=OuterRef("schedule_id")).order_by("scheduled_for", "id")
    return queued.filter(pk=Subquery(oldest.values("pk")[:1])).values_list("pk", flat=True)


def next_runs(retry_before: datetime) -> list[tuple[int, str, str]]:
    """The queued backfill runs a daemon may start now: per schedule, the oldest ones,
    as many as ``BACKFILL_CONCURRENCY`` leaves room for. Rows as ``(id, executor, reason)``."""
    queued = Run.objects.awaiting_daemon(retry_before).filter(reason=Reason.BACKFILL)
    schedule_ids = list(queued.order_by().values_list("schedule_id", flat=True).distinct()[:100])
    going = Q(status=Status.RUNNING) | Q(executor=Executor.TASKS, enqueued_at__isnull=False)
    active = dict(
        Run.objects.unsettled()
        .filter(going, schedule_id__in=schedule_ids, reason=Reason.BACKFILL)
        .values_list("schedule_id")
        .annotate(count=Count("id"))
        .values_list("schedule_id", "count")
    )
    rows: list[tuple[int, str, str]] = []
    for schedule_id in schedule_ids:
        room = conf.BACKFILL_CONCURRENCY - active.get(schedule_id, 0)
        if room > 0:
            oldest = queued.filter(schedule_id=schedule_id).order_by("scheduled_for", "id")
            rows += oldest.values_list("id", "executor", "reason")[:room]
    return rows


@dataclass(frozen=True)
class Progress:
    """How far the schedule's current backfill is: ``done`` of ``total`` runs ended."""

    done: int
    total: int
    failed: int


def progress(schedule: Schedule) -> Progress | None:
    """The backfill still going for ``schedule``, counted from its oldest pending run's
    creation; None if no backfill run is queued or running."""
    backfills = Run.objects.filter(schedule=schedule, reason=Reason.BACKFILL)
    since = backfills.filter(status__in=[Status.QUEUED, Status.RUNNING]).aggregate(
        since=Min("created_at")
    )["since"]
    if since is None:
        return None
    return progress_of(backfills.filter(created_at__gte=since))


def progress_of(runs: QuerySet[Run]) -> Progress:
    """Ended, total and problem counts of a set of backfill runs."""
    counts = dict(
        runs.values_list("status").annotate(count=Count("id")).values_list("status", "count")
    )
    total = sum(counts.values())
    pending = counts.get(Status.QUEUED, 0) + counts.get(Status.RUNNING, 0)
    failed = sum(counts.get(status, 0) for status in PROBLEM_STATUSES)
    return Progress(total - pending, total, failed)
