"""Start runs in the daemon's pool: due fire times, catch-up runs and queued runs.

Each run is claimed in the database by :mod:`scheduler.runner` in a pool thread, so
however many daemons share the database, a fire time runs once. A fire time that could
not be claimed because the database was away is not lost: its schedule is handed back
to the planner (``on_unclaimed``), which plans it again, with catch-up, at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from . import backfill, catch_up, runner
from .conf import conf
from .in_flight import InFlightPool
from .models import QUEUED_REASONS, Executor, Owner, Reason, Run, Schedule, Status

logger = logging.getLogger("scheduler.daemon")


class Launcher:
    """Submit runs to ``pool`` as ``owner``; ``stop`` ends running commands at once.

    Nothing is started once ``stopping`` is set: fire times not yet claimed are caught
    up at the next start.
    """

    def __init__(
        self,
        pool: InFlightPool,
        *,
        stop: threading.Event,
        stopping: threading.Event,
        late_fire: timedelta,
        on_unclaimed: Callable[[int], None],
    ) -> None:
        self.pool = pool
        self.stop = stop
        self.stopping = stopping
        # A fire handed over later than this was not merely queued behind others: the
        # daemon could not fire it in time, and the catch-up rules decide.
        self.late_fire = late_fire
        self.on_unclaimed = on_unclaimed
        self.owner = Owner.this_process()

    def fire_due(self, schedule_id: int, fire_times: list[datetime], now: datetime) -> None:
        """Start what APScheduler found due: one fire time on time, else a catch-up.

        Several fire times at once, or one handed over late, mean the daemon could not
        fire for a while (database outage, suspended process).
        """
        if len(fire_times) == 1 and now - fire_times[0] <= self.late_fire:
            self.fire(schedule_id, fire_times[0], Reason.SCHEDULED)
        else:
            self.catch_up(schedule_id)

    def fire(self, schedule_id: int, fire_time: datetime, reason: str) -> None:
        """Submit the run of ``schedule_id`` for ``fire_time``."""
        if not self.stopping.is_set():
            self.pool.submit(self.run_fire, schedule_id, fire_time, reason)

    def run_fire(self, schedule_id: int, fire_time: datetime, reason: str) -> None:
        """Claim and run ``fire_time`` of ``schedule_id`` in this thread."""
        if self.stopping.is_set():
            return  # not claimed: caught up at the next start
        try:
            runner.run_schedule(
                schedule_id,
                fire_time,
                reason,
                owner=self.owner,
                stop=self.stop,
                stopping=self.stopping,
            )
        except DatabaseError as exc:
            # Not claimed, so planned again with catch-up at the next tick instead of lost.
            logger.warning("Could not claim %s of schedule %s: %s", fire_time, schedule_id, exc)
            self.on_unclaimed(schedule_id)

    def catch_up(self, schedule_id: int) -> None:
        """Submit the catch-up decision and run of ``schedule_id``."""
        if not self.stopping.is_set():
            self.pool.submit(self.run_catch_up, schedule_id)

    def run_catch_up(self, schedule_id: int) -> None:
        """Decide, now, whether ``schedule_id`` catches up, and run it in this thread."""
        if self.stopping.is_set():
            return
        try:
            schedule = Schedule.objects.filter(pk=schedule_id, enabled=True).first()
            if schedule is None:
                return
            last_claimed = catch_up.last_claimed_fire_times([schedule_id]).get(schedule_id)
            missed = log_catch_up(schedule, catch_up.decide(schedule, last_claimed, timezone.now()))
            if missed is not None:
                runner.run_schedule(
                    schedule_id,
                    missed,
                    Reason.CATCH_UP,
                    owner=self.owner,
                    stop=self.stop,
                    stopping=self.stopping,
                )
        except DatabaseError as exc:
            # Nothing claimed: planned again with catch-up at the next tick, not lost.
            logger.warning("Could not catch up schedule %s: %s", schedule_id, exc)
            self.on_unclaimed(schedule_id)

    def start_queued(self, now: datetime) -> None:
        """Start queued runs here; hand queued ``tasks`` runs to the task backend.

        Queued runs are manual runs, retries once their ``run_after`` has come, and
        backfill runs, oldest first and ``BACKFILL_CONCURRENCY`` at a time per schedule.

        A ``tasks`` run is *handed over* once its task is enqueued on the backend; from
        then on it waits for a worker, not for a daemon, unless that hand-over got no
        task id within a heartbeat timeout: its daemon died while enqueueing.
        """
        retry_before = now - timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        queued = Run.objects.filter(
            Run.open_hand_over(retry_before),
            (Q(run_after__isnull=True) | Q(run_after__lte=now)) & ~Q(reason=Reason.BACKFILL)
            | Q(pk__in=backfill.oldest_queued(retry_before)),
            status=Status.QUEUED,
        )
        rows = list(queued.order_by("created_at").values_list("id", "executor", "reason")[:100])
        if any(reason == Reason.BACKFILL for _, _, reason in rows):
            # Only with backfill runs waiting: which of them the concurrency lets start.
            rows = [row for row in rows if row[2] != Reason.BACKFILL]
            rows += backfill.next_runs(retry_before)
        for run_id, executor, reason in rows:
            if executor == Executor.TASKS:
                self.pool.submit_once(("run", run_id), hand_over, run_id, retry_before)
            elif reason in QUEUED_REASONS:
                self.pool.submit_once(
                    ("run", run_id),
                    runner.run_queued,
                    run_id,
                    owner=self.owner,
                    stop=self.stop,
                    stopping=self.stopping,
                )


def hand_over(run_id: int, retry_before: datetime) -> None:
    """Enqueue the task of queued ``tasks`` run ``run_id``, unless another daemon has."""
    run = Run.objects.select_related("schedule").filter(pk=run_id).first()
    if run is not None:
        runner.hand_over(run, retry_before=retry_before)


def log_catch_up(schedule: Schedule, decision: catch_up.CatchUp) -> datetime | None:
    """Log a catch-up decision that missed fire times; return the fire time to run."""
    if decision.outcome is catch_up.Outcome.CATCH_UP_OFF:
        logger.info(
            "Schedule %s missed %d fire time(s); catch-up is off",
            schedule,
            decision.missed_count,
        )
    elif decision.outcome is catch_up.Outcome.OUTSIDE_WINDOW:
        logger.info(
            "Schedule %s missed %s, outside its %d s catch-up window",
            schedule,
            decision.missed,
            schedule.catch_up_window,
        )
    elif decision.outcome is catch_up.Outcome.RUN:
        logger.info("Schedule %s catches up its missed run of %s", schedule, decision.missed)
    return decision.fire_time
