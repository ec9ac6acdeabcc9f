"""Start runs in the daemon's pool: due fire times, catch-up runs and queued runs.

Each run is claimed in the database by :mod:`scheduler.runner` in a pool thread, so
however many daemons share the database, a fire time runs once. A fire time that could
not be claimed because the database was away is not lost: its schedule is handed back
to the planner (``on_unclaimed``), which plans it again, with catch-up, at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.db.models import Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from . import backfill, catch_up, runner
from .catch_up import CatchUp
from .conf import conf
from .in_flight import InFlightPool
from .models import QUEUED_REASONS, Executor, Reason, Run, Schedule
from .owners import Owner

logger = logging.getLogger("scheduler.daemon")

# What APScheduler found due for one schedule: its id, its fire times, and when it looked.
Due = tuple[int, list[datetime], datetime]

# Seconds between looks at a schedule whose run is still going, before the next missed
# fire time of a catch_up_runs="each" schedule is claimed.
CATCH_UP_BUSY_POLL = 0.5


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
        on_queued_done: Callable[[], None] = lambda: None,
    ) -> None:
        self.pool = pool
        self.stop = stop
        self.stopping = stopping
        # A fire handed over later than this was not merely queued behind others: the
        # daemon could not fire it in time, and the catch-up rules decide.
        self.late_fire = late_fire
        self.on_unclaimed = on_unclaimed
        # A queued run ended here: the next backfill run of its schedule may start now.
        self.on_queued_done = on_queued_done
        self.owner = Owner.this_process()

    def fire_due(self, due: Sequence[Due]) -> None:
        """Start what APScheduler found due at one wake-up: fire times on time, claimed
        together, and catch-ups.

        Several fire times of a schedule at once, or one handed over late, mean the
        daemon could not fire for a while (database outage, suspended process).
        """
        on_time = []
        for schedule_id, fire_times, now in due:
            if len(fire_times) == 1 and now - fire_times[0] <= self.late_fire:
                on_time.append((schedule_id, fire_times[0]))
            else:
                self.catch_up(schedule_id)
        self.fire_all(on_time, Reason.SCHEDULED)

    def fire_all(self, fires: list[tuple[int, datetime]], reason: str) -> None:
        """Submit the runs of these fire times, to be claimed together."""
        if len(fires) == 1:
            self.fire(*fires[0], reason)
        elif fires and not self.stopping.is_set():
            self.pool.submit(self.run_fires, fires, reason)

    def run_fires(self, fires: list[tuple[int, datetime]], reason: str) -> None:
        """Claim fire times together, then run each in a thread of its own."""
        if self.stopping.is_set():
            return
        try:
            runs, one_by_one = Run.claim_many(fires, reason, owner=self.owner)
        except DatabaseError as exc:
            logger.warning("Could not claim %d fire time(s): %s", len(fires), exc)
            for schedule_id, _ in fires:
                self.on_unclaimed(schedule_id)
            return
        for run in runs:
            if self.pool.submit(self.start_claimed, run) is None:
                run.release()  # the daemon is stopping: caught up at the next start
        for schedule_id, fire_time in one_by_one:
            self.fire(schedule_id, fire_time, reason)

    def start_claimed(self, run: Run) -> None:
        """Go on with ``run``, claimed by :meth:`run_fires`, in this thread."""
        runner.start_claimed(run, stop=self.stop, stopping=self.stopping)

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
            decision = catch_up.decide(schedule, last_claimed, timezone.now())
            missed = log_catch_up(schedule, decision)
            if decision.each:
                self.run_each(schedule_id, missed)
            elif missed:
                runner.run_schedule(
                    schedule_id,
                    missed[0],
                    Reason.CATCH_UP,
                    owner=self.owner,
                    stop=self.stop,
                    stopping=self.stopping,
                )
        except DatabaseError as exc:
            # Nothing claimed: planned again with catch-up at the next tick, not lost.
            logger.warning("Could not catch up schedule %s: %s", schedule_id, exc)
            self.on_unclaimed(schedule_id)

    def fire_catch_ups(self, decisions: Sequence[tuple[Schedule, CatchUp]]) -> None:
        """Log each decision and submit its catch-up runs: the latest missed fire times
        claimed together, each missed fire time of an ``each`` schedule one after another."""
        latest = []
        for schedule, decision in decisions:
            fire_times = log_catch_up(schedule, decision)
            if not decision.each:
                latest += [(schedule.pk, fire_time) for fire_time in fire_times[:1]]
            elif not self.stopping.is_set():
                note = left_out_note(decision)
                self.pool.submit(self.run_each_catching_db_errors, schedule.pk, fire_times, note)
        self.fire_all(latest, Reason.CATCH_UP)

    def run_each_catching_db_errors(
        self, schedule_id: int, fire_times: list[datetime], note: str = ""
    ) -> None:
        """Run ``run_each``; hand the schedule back to the planner if the database fails."""
        try:
            self.run_each(schedule_id, fire_times, note)
        except DatabaseError as exc:
            # What was not claimed is planned again with catch-up at the next tick.
            logger.warning("Could not catch up schedule %s: %s", schedule_id, exc)
            self.on_unclaimed(schedule_id)

    def run_each(self, schedule_id: int, fire_times: list[datetime], note: str = "") -> None:
        """Run each missed fire time in turn, in this thread, each after the last ended.

        ``note`` is added to the ``stderr`` of the first run once it ended (what was left
        out before it: see ``left_out_note``).

        A fire time is claimed only once the schedule has no run going, so the runs of an
        ``overlap="skip"`` schedule are not skipped against each other. Once a fire time
        turns out taken, another daemon is running the list: this one stops. What is not
        claimed when the daemon stops is caught up at the next start, counted from the
        latest fire time claimed.
        """
        for fire_time in fire_times:
            while True:
                if self.stopping.is_set():
                    return
                run = runner.run_schedule(
                    schedule_id,
                    fire_time,
                    Reason.CATCH_UP,
                    owner=self.owner,
                    stop=self.stop,
                    stopping=self.stopping,
                    if_free=True,
                )
                if run is not None:
                    if note:
                        add_note(run, note)
                        note = ""
                    break
                if not Schedule.objects.filter(pk=schedule_id, enabled=True).exists():
                    return
                if catch_up.fire_time_taken(schedule_id, fire_time):
                    logger.info(
                        "Catch-up of schedule %s from %s goes on in another process",
                        schedule_id,
                        fire_time,
                    )
                    return
                self.stopping.wait(CATCH_UP_BUSY_POLL)

    def start_queued(self, now: datetime) -> datetime | None:
        """Start queued runs here; hand queued ``tasks`` runs to the task backend.

        Queued runs are manual runs, retries once their ``run_after`` has come, and
        backfill runs, oldest first and ``BACKFILL_CONCURRENCY`` at a time per schedule.
        Return when to look again without being told of a change: the next retry's
        ``run_after``, or a heartbeat interval on while any run waits here.

        A ``tasks`` run is *handed over* once its task is enqueued on the backend; from
        then on it waits for a worker, not for a daemon, unless that hand-over got no
        task id within a heartbeat timeout: its daemon died while enqueueing.
        """
        retry_before = now - timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        queued = Run.objects.awaiting_daemon(retry_before).filter(
            ~Q(reason=Reason.BACKFILL) | Q(pk__in=backfill.oldest_queued(retry_before))
        )
        waiting = list(
            queued.order_by("created_at").values_list("id", "executor", "reason", "run_after")[:100]
        )
        rows = [row[:3] for row in waiting if row[3] is None or row[3] <= now]
        if any(reason == Reason.BACKFILL for _, _, reason in rows):
            # Only with backfill runs waiting: which of them the concurrency lets start.
            rows = [row for row in rows if row[2] != Reason.BACKFILL]
            rows += backfill.next_runs(retry_before)
        for run_id, executor, reason in rows:
            if executor == Executor.TASKS:
                self.pool.submit_once(("run", run_id), hand_over, run_id, retry_before)
            elif reason in QUEUED_REASONS:
                self.pool.submit_once(("run", run_id), self.run_queued, run_id)
        if not waiting:
            return None
        look_again = now + timedelta(seconds=conf.HEARTBEAT_INTERVAL)
        return min([look_again, *(row[3] for row in waiting if row[3] and row[3] > now)])

    def run_queued(self, run_id: int) -> None:
        """Run the queued run ``run_id`` in this thread, then say it ended."""
        try:
            runner.run_queued(run_id, owner=self.owner, stop=self.stop, stopping=self.stopping)
        finally:
            self.on_queued_done()


def left_out_note(decision: CatchUp) -> str:
    """Say which missed fire times catch-up leaves out; empty if none."""
    if not decision.left_out:
        return ""
    return (
        f"[scheduler] {decision.left_out} older missed fire time(s), "
        f"{decision.left_out_first} to {decision.left_out_last}, were not run: past the "
        f"limit of {catch_up.CATCH_UP_LIMIT} catch-up runs per start.\n"
    )


def add_note(run: Run, note: str) -> None:
    """Append ``note`` to the ``stderr`` of ``run`` if it has ended (a result overwrites it)."""
    ended = Run.objects.filter(pk=run.pk).ended()
    ended.update(stderr=Concat("stderr", Value(f"\n{note}")))


def hand_over(run_id: int, retry_before: datetime) -> None:
    """Enqueue the task of queued ``tasks`` run ``run_id``, unless another daemon has."""
    run = Run.objects.select_related("schedule").filter(pk=run_id).first()
    if run is not None:
        runner.hand_over(run, retry_before=retry_before)


def log_catch_up(schedule: Schedule, decision: catch_up.CatchUp) -> list[datetime]:
    """Log a catch-up decision that missed fire times; return the fire times to run."""
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
    elif decision.each:
        logger.info(
            "Schedule %s catches up %d missed runs, %s to %s",
            schedule,
            len(decision.each),
            decision.each[0],
            decision.each[-1],
        )
        if decision.left_out:
            logger.warning(
                "Schedule %s: %d older missed fire time(s), %s to %s, are not run: past the "
                "limit of %d catch-up runs per start",
                schedule,
                decision.left_out,
                decision.left_out_first,
                decision.left_out_last,
                catch_up.CATCH_UP_LIMIT,
            )
    elif decision.outcome is catch_up.Outcome.RUN:
        logger.info("Schedule %s catches up its missed run of %s", schedule, decision.missed)
    return decision.fire_times
