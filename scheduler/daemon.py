"""The scheduler daemon: its life cycle and the loop that wakes for what is due or changed.

Between ticks the loop waits on :mod:`scheduler.changes` (notifications on PostgreSQL, a
one-statement probe every ``POLL_INTERVAL`` on SQLite) until upkeep or a queued retry is
due. Each tick delegates to the daemon's parts, each named for its job:

- :mod:`scheduler.upkeep`: heartbeat, dividing the schedules with other daemons, runs
  nobody will finish, pruning, lost mail;
- :mod:`scheduler.planner`: APScheduler's jobs in step with the ``Schedule`` rows,
  deciding catch-up (:mod:`scheduler.catch_up`) for what changed;
- :mod:`scheduler.launcher`: queued runs (and, called by APScheduler, due fire times);
- :mod:`scheduler.in_flight`: the thread pool all that work runs in;
- :mod:`scheduler.apscheduler_adapter`: APScheduler, which wakes up at fire times.

The daemon itself owns starting up, riding out database outages, and shutting down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from . import pings, runner
from .apscheduler_adapter import APSchedulerJobs
from .changes import ANYTHING, DAEMONS, RUNS, SCHEDULES, watch
from .commands import allowed_commands
from .conf import conf
from .executor import start_fork_server, stop_fork_server
from .in_flight import InFlightPool
from .launcher import Launcher
from .models import Executor, Heartbeat, Run
from .outages import record_outage
from .owners import Owner
from .planner import Planner
from .shares import Share
from .upkeep import Upkeep, sync_declared_schedules

logger = logging.getLogger("scheduler.daemon")


class SchedulerDaemon:
    """Construct, then :meth:`run` until :meth:`request_stop` (the command does only that).

    Tests drive it a step at a time instead: :meth:`tick` with a ``now``, then
    :meth:`drain` to wait for the work it started. ``pool`` replaces the thread pool.
    ``fork_server_from_here`` starts the process executor's fork server as a fork of this
    process, which shares its memory: right for the command, which runs nothing else,
    not for a daemon inside another program (a test run).
    """

    def __init__(
        self,
        *,
        poll_interval: float | None = None,
        pool: InFlightPool | None = None,
        fork_server_from_here: bool = False,
    ) -> None:
        self.poll_interval = poll_interval if poll_interval is not None else conf.POLL_INTERVAL
        self.fork_server_from_here = fork_server_from_here
        self.stopping = threading.Event()
        self.kill = threading.Event()
        self.pool = pool or InFlightPool(conf.MAX_CONCURRENT_RUNS)
        self.launcher = Launcher(
            self.pool,
            stop=self.kill,
            stopping=self.stopping,
            late_fire=timedelta(seconds=max(5.0, 3 * self.poll_interval)),
            on_unclaimed=self._replan,
            on_queued_done=lambda: self.changes.wake(RUNS),
        )
        self.jobs = APSchedulerJobs(on_due=self.launcher.fire_due)
        self.planner = Planner(self.jobs, self.launcher, resync_interval=conf.RESYNC_INTERVAL)
        self.upkeep = Upkeep(self.pool, on_divide=self.divide)
        self.changes = watch(self.poll_interval)
        # When to look at the queued runs without being told of a change (a retry's time).
        self._queued_due: datetime | None = None
        self.unfinished = 0
        self._db_down_since: datetime | None = None

    @property
    def owner(self) -> Owner:
        """Return the owner this daemon's runs are claimed under."""
        return self.launcher.owner

    @property
    def heartbeat(self) -> Heartbeat | None:
        return self.upkeep.heartbeat

    def attach(self, heartbeat: Heartbeat) -> None:
        """Beat ``heartbeat`` and claim runs under it from now on."""
        self.upkeep.heartbeat = heartbeat
        self.launcher.owner = Owner(heartbeat.host, heartbeat.pid, heartbeat.pk)

    def run(self) -> None:
        """Start up, tick on each change or due time until asked to stop, and shut down."""
        if conf.EXECUTOR != Executor.TASKS:  # a pure scheduler need not hold one in memory
            start_fork_server(fork_this_process=self.fork_server_from_here)
        me = Owner.this_process()
        self.attach(Heartbeat.start(host=me.host, pid=me.pid))
        self.jobs.start(paused=True)
        try:
            allowed_commands()  # worked out now rather than by the first runs
            self.changes.start()  # before the first read: no change falls in between
            self._guarded(sync_declared_schedules)
            self._guarded(self.upkeep.check_liveness, timezone.now())
            self.upkeep.mail_missed_later()
            self.plan_all()
            self._guarded(self.planner.drop_orphan_jobs)
            self.jobs.resume()
            self._guarded(self.upkeep.start_firing)
            logger.info(
                "Scheduler started with %d enabled schedule(s); watching for changes %s",
                len(self.planner.planned),
                self.changes.describe(),
            )
            while not self.stopping.is_set():
                changed = self.changes.wait(self.idle_for())
                if not self.stopping.is_set():
                    self._guarded(self.tick, None, changed)
        finally:
            try:
                self.shutdown()
            finally:
                stop_fork_server()  # after the runs: it kills any still going
                self.changes.close()

    def idle_for(self) -> float:
        """Return the seconds the loop may wait for a change before something is due."""
        waits = [self.upkeep.due_in()]
        if self._queued_due is not None:
            waits.append((self._queued_due - timezone.now()).total_seconds())
        if self._db_down_since is not None:
            waits.append(self.poll_interval)
        return max(0.0, min(waits))

    def plan_all(self) -> None:
        """Plan every enabled schedule before start-up counts them; retry a failed read.

        A read that succeeds right after a failure is done again, as coming back from a
        failure forgets what was planned (``_guarded``).
        """
        while not self.stopping.is_set():
            self._guarded(self.sync, timezone.now(), True)
            if self._db_down_since is None and self.planner.synced:
                return
            if self._db_down_since is not None:
                self.stopping.wait(self.poll_interval)

    def tick(self, now: datetime | None = None, changed: set[str] | None = None) -> None:
        """Do the upkeep due, sync the schedules and start queued runs as ``changed`` asks.

        ``changed`` comes from :meth:`Changes.wait`; None (as tests call it) does all.
        Without ``now``, each step reads the clock as it starts: upkeep may take a while,
        and planning from a time already past would fire late what is due meanwhile.
        """
        everything = changed is None or self._db_down_since is not None
        changed = changed or set()
        self.upkeep.told_of_daemons = self.changes.announces_daemons
        if DAEMONS in changed:
            self.upkeep.divide(read=True)
        elif ANYTHING in changed:
            self.upkeep.notice_change()
        self.upkeep.step(now or timezone.now())
        planned_at = now or timezone.now()
        if everything or changed & {SCHEDULES, ANYTHING}:
            # Only a poll needs the periodic full read: notifications name every row.
            full = (everything or ANYTHING in changed) and self.planner.full_sync_due(planned_at)
            if SCHEDULES in changed:
                named = self.changes.take_schedule_ids()
                full = full or named is None
                for schedule_id in named or ():
                    self.planner.replan(schedule_id)
            self.sync(planned_at, full)
        queued_at = now or timezone.now()
        due = self._queued_due is not None and self._queued_due <= queued_at
        if everything or due or changed & {RUNS, ANYTHING}:
            self._queued_due = self.launcher.start_queued(queued_at)

    def sync(self, now: datetime, full: bool) -> None:
        """Sync the schedules; after a read of them, check alerts once and say whether to
        check them again."""
        if self.planner.sync(now, full=full):
            self.upkeep.watch_alerts = self.planner.sets_alerts
            self.upkeep.check_alerts()

    def drain(self, timeout: float | None = 10.0) -> bool:
        """Wait for the work in flight to finish; return whether it all did."""
        return self.pool.drain(timeout)

    def request_stop(self, *, immediate: bool = False) -> None:
        """Stop starting runs; with ``immediate``, also stop the ones running now."""
        self.stopping.set()
        # Fire times found due from now on start no run here: left due in the job store,
        # another daemon fires them.
        self.jobs.stop_storing_fires()
        if immediate:
            self.kill.set()
        self.changes.wake()

    def divide(self, held: frozenset[Share], current: Share, before: Share | None) -> None:
        """Fire the schedules of ``held`` from now on; plan again those ``current`` has
        and ``before`` had not.

        A schedule gained from a daemon that stopped or died may have missed fire times
        (unclaimed when it went): planned again, the catch-up rules decide them. Gains
        are counted between current shares: one held on from before still gains the
        schedules of a daemon that went meanwhile.
        """
        self.jobs.divide(held)
        if before is None:
            return
        gained = [s for s in self.planner.planned if current.owns(s) and not before.owns(s)]
        for schedule_id in gained:
            self.planner.replan(schedule_id)
        if gained:
            self.changes.wake(ANYTHING)

    def _replan(self, schedule_id: int) -> None:
        self.planner.replan(schedule_id)
        self.changes.wake(ANYTHING)

    def _guarded(self, step: Callable[..., object], *args: Any) -> None:
        """Run a loop step; a database outage is logged once, not once per tick."""
        try:
            step(*args)
        except DatabaseError as exc:
            if self._db_down_since is None:
                self._db_down_since = timezone.now()
                logger.error(
                    "Database unavailable, retrying every %.1f s: %s", self.poll_interval, exc
                )
            close_old_connections()
            return
        if self._db_down_since is not None:
            logger.warning("Database back after %s", timezone.now() - self._db_down_since)
            self._record_outage(self._db_down_since)
            self._db_down_since = None
            # Plan every schedule again: fire times lost in the outage follow catch-up rules.
            self.planner.forget()
            self.upkeep.defer_judging()

    def _record_outage(self, started_at: datetime) -> None:
        """Record the outage just ridden out, for the metrics every daemon serves."""
        try:
            record_outage(self.owner, started_at, timezone.now())
        except DatabaseError as exc:
            logger.error("Could not record the database outage: %s", exc)

    def shutdown(self) -> None:
        """Let running runs finish within ``SHUTDOWN_GRACE``, then stop them.

        Fire times not yet started stay unclaimed, so catch-up runs them at the next start.
        Mail cancelled here is sent later by a daemon's ``mail_missed``.
        """
        logger.info("Scheduler stopping: no new runs start")
        try:
            if self.heartbeat is not None:
                self.heartbeat.stop_firing()  # the other daemons take over its schedules
        except DatabaseError as exc:
            logger.error("Could not record that this daemon stopped firing: %s", exc)
        self.jobs.shutdown()
        running = self.pool.close()
        if running and not self.kill.is_set():
            logger.info(
                "Waiting up to %.0f s for %d running run(s)", conf.SHUTDOWN_GRACE, len(running)
            )
            deadline = time.monotonic() + conf.SHUTDOWN_GRACE
            while time.monotonic() < deadline and not self.kill.is_set():
                if self.pool.drain(timeout=0.1):
                    break
        self.kill.set()
        self.pool.drain(timeout=conf.KILL_GRACE + 2)
        self.unfinished = len(self.pool.pending())
        try:
            if self.unfinished:
                # Only thread-executor runs cannot be stopped; the process exits under them.
                assert self.heartbeat is not None
                interrupted = (
                    Run.objects.running()
                    .owned_by([self.heartbeat.pk])
                    .interrupt("Interrupted: the scheduler exited while this run was going.")
                )
                logger.warning("Abandoned %d run(s) that could not be stopped", len(interrupted))
                for run in interrupted:
                    runner.finished(run)
            assert self.heartbeat is not None
            self.heartbeat.stop()
        except DatabaseError as exc:
            logger.error("Could not record the shutdown: %s", exc)
        pings.drain(conf.PING_TIMEOUT)
        logger.info("Scheduler stopped")
