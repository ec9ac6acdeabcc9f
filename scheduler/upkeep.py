"""The daemon's upkeep: liveness, pruning, lost tasks, lost runs and lost mail.

Every ``HEARTBEAT_INTERVAL`` the daemon beats its heartbeat. While any run is running or
queued, or this daemon started work since its last look, it also resolves runs nobody
will finish: those of daemons and workers gone silent, ``tasks`` runs long overdue, its
own runs it could not record, and queued runs whose task the backend lost; otherwise
one cheap look every ``HEARTBEAT_TIMEOUT`` tells whether there is anything to resolve.
Daemons sharing the database divide the schedules (:mod:`scheduler.shares`): a
daemon reads which daemons fire at every beat while it shares, alone every
``HEARTBEAT_TIMEOUT``, and when told that daemons came or went. Not told (no
notifications), it also reads when the database changed (a daemon starting or stopping
is a change): at most once a ``POLL_INTERVAL`` while it shares, once a beat alone.
Run history is pruned every ``PRUNE_INTERVAL`` after runs ended here, and at least
every ``IDLE_PRUNE_INTERVAL`` (the age limits move slowly); mail about runs whose mail
was lost goes out with it.
Whatever may be slow goes to the pool, so the loop never waits for it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import alerts, notifications, runner
from .conf import conf
from .declared import sync_declared
from .in_flight import InFlightPool
from .liveness import dead_heartbeats, live_daemons, prune_heartbeats
from .models import Heartbeat, Run
from .retention import prune_runs
from .shares import EVERYTHING, Share, Shares, share_of

logger = logging.getLogger("scheduler.daemon")

# The shares this daemon fires, its current share, and the one before if it just changed.
OnDivide = Callable[[frozenset[Share], Share, Share | None], None]

# Runs ended this long ago at most, and not notified, are mailed by any daemon: their
# own mail was lost (a daemon stopping, or dying, just after it ended them).
MAIL_SWEEP_WINDOW = timedelta(days=1)
# Seconds between prunings (and forgetting old heartbeats) while no run ends here.
IDLE_PRUNE_INTERVAL = 3600.0
NEVER = -math.inf  # a monotonic time before any other


class Upkeep:
    """Keep this daemon's ``heartbeat`` beating and the run history truthful.

    ``on_divide`` gets, whenever they change, the shares of the schedules this daemon
    fires, its current share and, if that changed, the one before.
    """

    def __init__(
        self, pool: InFlightPool, on_divide: OnDivide = lambda held, current, before: None
    ) -> None:
        self.pool = pool
        self.heartbeat: Heartbeat | None = None
        self.on_divide = on_divide
        # Longer than a live daemon goes without reading who lives: one that does not
        # beat for HEARTBEAT_TIMEOUT is taken for dead anyway (scheduler.shares).
        self.shares = Shares(overlap=conf.HEARTBEAT_TIMEOUT + conf.HEARTBEAT_INTERVAL)
        self._held = frozenset({EVERYTHING})
        self._last_members_read = NEVER
        # Whether daemons coming and going are announced (PostgreSQL notifications).
        self.told_of_daemons = False
        # Whether this daemon fires schedules (set once it has planned them).
        self.firing = False
        self._last_beat = NEVER
        self._last_prune = time.monotonic()
        self._ended_at_prune = runner.ended_count()
        # Judge other daemons dead only after this (monotonic) time; see defer_judging.
        self._judge_stale_after = 0.0
        self._lost_seen: set[int] = set()
        self._last_alert_check = NEVER
        self._last_sweep = NEVER
        self._last_heartbeat_prune = NEVER
        self._busy = True
        self._submitted_at_sweep = pool.submitted
        # Whether any enabled schedule sets an alert (the planner tells, as it reads them).
        self.watch_alerts = True

    def step(self, now: datetime) -> None:
        """Check liveness, prune and check alerts, each when its interval has passed."""
        if self._until(self._last_beat, conf.HEARTBEAT_INTERVAL) <= 0:
            self.check_liveness(now)
        if self._until_prune() <= 0:
            self._last_prune = time.monotonic()
            self._ended_at_prune = runner.ended_count()
            self.pool.submit_once("prune", prune, now)
            self.mail_missed_later()
        if self.watch_alerts and self._until(self._last_alert_check, alerts.CHECK_INTERVAL) <= 0:
            self.check_alerts()

    def check_alerts(self) -> None:
        """Check the alerts in the pool (also once after schedules changed)."""
        self._last_alert_check = time.monotonic()
        self.pool.submit_once("alerts", alerts.check)

    def due_in(self) -> float:
        """Return the seconds until :meth:`step` has something to do."""
        waits = [self._until(self._last_beat, conf.HEARTBEAT_INTERVAL), self._until_prune()]
        if self.watch_alerts:
            waits.append(self._until(self._last_alert_check, alerts.CHECK_INTERVAL))
        return min(waits)

    def _until_prune(self) -> float:
        ended_here = runner.ended_count() != self._ended_at_prune
        return self._until(
            self._last_prune, conf.PRUNE_INTERVAL if ended_here else IDLE_PRUNE_INTERVAL
        )

    @staticmethod
    def _until(last: float, interval: float) -> float:
        return max(0.0, last + interval - time.monotonic())

    def defer_judging(self) -> None:
        """Judge no daemon dead for a heartbeat timeout: all were cut off by an outage."""
        self._judge_stale_after = time.monotonic() + conf.HEARTBEAT_TIMEOUT

    def mail_missed_later(self) -> None:
        """Submit :meth:`mail_missed` to the pool, unless it is still running."""
        self.pool.submit_once("mail", self.mail_missed)

    def check_liveness(self, now: datetime) -> None:
        """Beat; end the running runs of gone daemons and workers, and overdue ``tasks``
        runs, as interrupted; forget old heartbeats; look for queued runs whose task was
        lost. The resolving is skipped while no run is running or queued."""
        assert self.heartbeat is not None
        self.heartbeat.beat()
        self._last_beat = time.monotonic()
        if self.firing and self.heartbeat.firing_since is None:
            self.heartbeat.start_firing()  # a first try failed; the others count it now
        self.divide()
        if not self._sweep_due():
            return
        self._last_sweep = time.monotonic()
        self._submitted_at_sweep = self.pool.submitted
        self._busy = bool(runner.holding()) or Run.objects.unsettled().exists()
        if self._until(self._last_heartbeat_prune, IDLE_PRUNE_INTERVAL) <= 0 or self._busy:
            # Daemons' up-time answers `schedules why` as far back as runs are kept.
            prune_heartbeats(keep_for=timedelta(days=max(7, conf.KEEP_DAYS)))
            self._last_heartbeat_prune = time.monotonic()
        if not self._busy:
            self._lost_seen = set()
            return
        stale_after = timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        dead = dead_heartbeats(
            stale_after=stale_after,
            me=self.heartbeat,
            judge_stale=time.monotonic() >= self._judge_stale_after,
        )
        interrupted = (
            Run.objects.running()
            .owned_by(dead)
            .interrupt("Interrupted: the scheduler or worker running it stopped or died.")
        )
        interrupted += Run.objects.overdue_tasks(
            now,
            max_age=timedelta(seconds=conf.TASKS_MAX_AGE),
            grace=timedelta(seconds=conf.KILL_GRACE) + stale_after,
        ).interrupt(
            "Interrupted: still running long past its timeout or TASKS_MAX_AGE; "
            "the worker running it was lost."
        )
        if interrupted:
            logger.warning(
                "Resolved %d run(s) of gone daemons or workers as interrupted", len(interrupted)
            )
        interrupted += self.end_lost_runs()
        for run in interrupted:
            self.pool.submit(runner.finished, run)  # mail may be slow; the loop must not wait
        if Run.objects.awaiting_worker(now - stale_after).exists():
            self.pool.submit_once("lost tasks", fail_lost_tasks, now - stale_after)

    def divide(self, *, read: bool = False) -> None:
        """Work out this daemon's share of the schedules; hand on the shares it holds if
        they changed. ``read``: read which daemons live now, due or not."""
        assert self.heartbeat is not None
        now = time.monotonic()
        before = None
        if read or self._members_read_due():
            stale_after = timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
            members = live_daemons(stale_after=stale_after, me=self.heartbeat)
            self._last_members_read = now
            before = self.shares.update(share_of(self.heartbeat.pk, members), now)
        held = self.shares.held(now)
        if held != self._held:
            self._held = held
            logger.info("Firing %s", describe_shares(held))
        elif before is None:
            return
        self.on_divide(held, self.shares.current, before)

    def notice_change(self) -> None:
        """Something changed in the database, maybe a daemon started or stopped firing:
        unless told of daemons, read which fire, at most once a ``POLL_INTERVAL`` while
        sharing (one stopping hands over at once), once a beat alone."""
        if self.told_of_daemons:
            return
        sharing = not self.shares.current.everything
        interval = conf.POLL_INTERVAL if sharing else conf.HEARTBEAT_INTERVAL
        if self._until(self._last_members_read, interval) <= 0:
            self.divide(read=True)

    def start_firing(self) -> None:
        """Count this daemon among those dividing the schedules from now on."""
        assert self.heartbeat is not None
        self.firing = True
        self.heartbeat.start_firing()

    def _members_read_due(self) -> bool:
        """At a beat: read while sharing (a daemon that dies must be noticed soon), else
        every ``HEARTBEAT_TIMEOUT``: no notification says a stale daemon beats again."""
        if self._last_members_read == NEVER or not self.shares.current.everything:
            return True
        return self._until(self._last_members_read, conf.HEARTBEAT_TIMEOUT) <= 0

    def _sweep_due(self) -> bool:
        """Resolve at every beat while runs go on or were started here since the last
        look; else look every heartbeat timeout."""
        if self._busy or self.pool.submitted != self._submitted_at_sweep:
            return True
        return self._until(self._last_sweep, conf.HEARTBEAT_TIMEOUT) <= 0

    def end_lost_runs(self) -> list[Run]:
        """End this daemon's own ``running`` runs that none of its threads holds any more.

        A run whose result could not be written within ``PERSIST_RETRY_FOR`` (a long
        database outage) is recorded now; a run this daemon lost otherwise (a write that
        failed for good on the way) would stay ``running`` for ever under its live
        heartbeat, so it ends ``interrupted``. A run is taken for lost when seen so on two
        checks in a row: one claimed a moment ago may not be held yet.
        """
        assert self.heartbeat is not None
        recorded = runner.record_unrecorded()
        if recorded:
            logger.warning(
                "Recorded %d run result(s) kept back by a database outage", len(recorded)
            )
        mine = Run.objects.running().owned_by([self.heartbeat.pk])
        lost = set(mine.values_list("pk", flat=True)) - runner.holding()
        confirmed, self._lost_seen = lost & self._lost_seen, lost
        ended = Run.objects.filter(pk__in=confirmed).interrupt(
            "Interrupted: the scheduler running it could not record how it ended "
            "(the database was unavailable)."
        )
        if ended:
            logger.warning("Ended %d run(s) of this scheduler it could not finish", len(ended))
        return recorded + ended

    @staticmethod
    def mail_missed(now: datetime | None = None) -> None:
        """Mail about recently ended runs whose mail was never sent.

        Their own mail was lost: cancelled by a daemon's shutdown, or its daemon died
        after ending them. A run is mailed once whoever sends it (``claim_notification``).
        """
        if not settings.ADMINS:
            return
        now = now or timezone.now()
        settled = now - timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        missed = Run.objects.unnotified(ended_after=now - MAIL_SWEEP_WINDOW, ended_before=settled)[
            :100
        ]
        for run in missed:
            logger.info("Mailing about run %s of %s, whose mail was lost", run.pk, run.schedule)
            notifications.mail_admins_about_run(sender=Run, run=run)


def describe_shares(shares: frozenset[Share]) -> str:
    """Say which schedules ``shares`` are, for the log."""
    if EVERYTHING in shares:
        return "every schedule: no other daemon fires any"
    parts = sorted(f"id % {share.count} == {share.index}" for share in shares)
    return "the schedules whose " + " or ".join(parts) + ": other daemons fire the rest"


def sync_declared_schedules() -> None:
    """Create or update the schedules declared in ``SCHEDULER["SCHEDULES"]``."""
    report = sync_declared(conf.SCHEDULES)
    for change, names in report.items():
        if names:
            logger.info("Schedules in code %s: %s", change, ", ".join(names))


def prune(now: datetime) -> None:
    """Prune run history past its limits (in a pool thread: it may take long)."""
    pruned = prune_runs(now)
    if pruned:
        logger.info("Pruned %d run(s) past the history limits", pruned)


def fail_lost_tasks(enqueued_before: datetime) -> None:
    """Fail queued runs whose task the backend lost (in a pool thread: it may be slow)."""
    lost = runner.fail_lost_tasks(enqueued_before)
    if lost:
        logger.warning("Failed %d queued run(s) whose task was lost", len(lost))
