"""Keep APScheduler's jobs in step with the enabled ``Schedule`` rows.

*Planning* a schedule means deciding its catch-up (:mod:`scheduler.catch_up`), starting
that run if any, and storing its job with its next fire time. A schedule is planned
again when its row changes, so edits from admin or another process reach a running
daemon without a restart. A paused schedule's job fires next after its pause ends (an
indefinitely paused one has no job), so a pause ends on time with no re-planning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Q

from . import catch_up
from .apscheduler_adapter import APSchedulerJobs, JobPlan
from .launcher import Launcher
from .models import Schedule
from .steer import resume_at
from .timing import TimingError

logger = logging.getLogger("scheduler.daemon")

CHUNK = 500
# What planning a schedule depends on (the id first; see Planner.sync on edits that keep
# updated_at), then whether it sets alerts (upkeep checks them only if one does).
PLANNED_FIELDS = (
    "id",
    "updated_at",
    "cron",
    "interval",
    "timezone",
    "created_at",
    "paused_until",
    "late_after",
    "long_after",
    "expect_success_within",
)


def _sets_alerts(row: Sequence[Any]) -> bool:
    return any(value is not None for value in row[7:10])


class Planner:
    """Plan changed schedules into ``jobs``; start their catch-up runs with ``launcher``."""

    def __init__(
        self, jobs: APSchedulerJobs, launcher: Launcher, *, resync_interval: float
    ) -> None:
        self.jobs = jobs
        self.launcher = launcher
        self.resync_interval = resync_interval
        # Per planned schedule, the row's fields its plan depends on.
        self._planned: dict[int, tuple[Any, ...]] = {}
        self._replan: set[int] = set()
        self._fingerprint: tuple[Any, ...] | None = None
        self._last_full_sync = 0.0
        # The enabled schedules that set an alert, as of the last read of the rows.
        self._alerting: set[int] = set()

    @property
    def planned(self) -> frozenset[int]:
        """Return the ids of the schedules planned now."""
        return frozenset(self._planned)

    @property
    def synced(self) -> bool:
        """Return whether a sync has read the schedules since start or :meth:`forget`."""
        return self._fingerprint is not None

    def full_sync_due(self, now: datetime) -> bool:
        """Return whether ``RESYNC_INTERVAL`` has passed since the last full sync."""
        return now.timestamp() - self._last_full_sync >= self.resync_interval

    def replan(self, schedule_id: int) -> None:
        """Plan ``schedule_id`` again at the next sync (its fire time was not claimed)."""
        self._replan.add(schedule_id)

    def forget(self) -> None:
        """Plan every schedule again at the next sync (after a database outage)."""
        self._planned = {}
        self._fingerprint = None

    def sync(self, now: datetime, *, full: bool = False) -> bool:
        """Bring the jobs in line with the enabled schedules in the database.

        A cheap fingerprint query runs every time; when it changed, only the rows edited
        or added since the last read are read, unless some were deleted. With ``full``
        every row is read, in case one was edited in a way that does not move
        ``updated_at`` (``QuerySet.update()``, raw SQL). Return whether rows were read.
        """
        fingerprint = tuple(
            Schedule.objects.aggregate(
                count=Count("id"), latest=Max("updated_at"), ids=Max("id")
            ).values()
        )
        replan, self._replan = self._replan, set()
        if not full and not replan and fingerprint == self._fingerprint:
            return False
        for schedule_id in replan:
            self._planned.pop(schedule_id, None)
        current = None if full else self._read_changed(fingerprint, replan)
        if current is None:
            rows = list(Schedule.objects.filter(enabled=True).values_list(*PLANNED_FIELDS))
            current = {row[0]: row[1:] for row in rows}
            self._alerting = {row[0] for row in rows if _sets_alerts(row)}
        for schedule_id in self._planned.keys() - current.keys():
            self.jobs.remove(schedule_id)
            logger.info("Schedule %s removed or disabled", schedule_id)
        changed = [sid for sid, version in current.items() if self._planned.get(sid) != version]
        for start in range(0, len(changed), CHUNK):
            # One transaction per chunk: the job store's writes commit together instead
            # of one by one (on SQLite, one fsync per chunk rather than per schedule).
            with transaction.atomic():
                self._plan(changed[start : start + CHUNK], now)
        self._planned = current
        self._fingerprint = fingerprint
        if full:
            self._last_full_sync = now.timestamp()
        return True

    @property
    def sets_alerts(self) -> bool:
        """Return whether any enabled schedule sets an alert, as of the last read."""
        return bool(self._alerting)

    def _read_changed(
        self, fingerprint: tuple[Any, ...], replan: set[int]
    ) -> dict[int, tuple[Any, ...]] | None:
        """Return the planned versions with the rows edited or added since the last read
        (and ``replan``) applied; None when that cannot tell all: rows were deleted."""
        if self._fingerprint is None or None in self._fingerprint or len(replan) > CHUNK:
            return None  # (many to plan again, e.g. gained from a daemon that stopped)
        _, latest, last_id = self._fingerprint
        rows = Schedule.objects.filter(
            Q(updated_at__gte=latest) | Q(id__gt=last_id) | Q(pk__in=replan)
        ).values_list(*PLANNED_FIELDS, "enabled")
        current = dict(self._planned)
        added = 0
        for *row, enabled in rows:
            schedule_id = row[0]
            added += schedule_id > last_id
            if enabled:
                current[schedule_id] = tuple(row[1:])
            else:
                current.pop(schedule_id, None)
            if enabled and _sets_alerts(row):
                self._alerting.add(schedule_id)
            else:
                self._alerting.discard(schedule_id)
        if fingerprint[0] != self._fingerprint[0] + added:
            return None
        return current

    def drop_orphan_jobs(self) -> None:
        """Remove stored jobs of schedules deleted or disabled while no daemon ran."""
        self.jobs.remove_all_but(self._planned)

    def _plan(self, schedule_ids: list[int], now: datetime) -> None:
        last_claimed = catch_up.last_claimed_fire_times(schedule_ids)
        plans, decisions = [], []
        for schedule in Schedule.objects.filter(pk__in=schedule_ids, enabled=True):
            try:
                timing = schedule.timing
                decision = catch_up.decide(schedule, last_claimed.get(schedule.pk), now, timing)
                next_fire = (
                    None
                    if schedule.paused_indefinitely
                    else decision.next_fire or timing.next_fire_time(resume_at(schedule, now))
                )
            except (TimingError, ArithmeticError, ValueError) as exc:
                # One row written around validation must not stop the others.
                logger.error("Schedule %s cannot be scheduled: %s", schedule, exc)
                self.jobs.remove(schedule.pk)
                continue
            decisions.append((schedule, decision))
            if next_fire is None:
                self.jobs.remove(schedule.pk)
                continue
            plans.append(JobPlan(schedule.pk, schedule.name, timing, next_fire))
        self.launcher.fire_catch_ups(decisions)
        self.jobs.put(plans)
