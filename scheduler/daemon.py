"""The long-running scheduler: keeps APScheduler's jobs in step with ``Schedule`` rows.

APScheduler hosts the jobs (persisted in django-apscheduler's job store) and wakes up at
fire times; it does not run commands. Its executor here only hands each fire time to a
thread pool, where :mod:`scheduler.runner` claims it in the database and runs it. The
daemon's own loop polls the schedule table so edits from admin or another process are
picked up within ``POLL_INTERVAL`` without a restart, starts queued manual runs, hands
``tasks`` runs to the task backend, and runs catch-up for fire times that passed while
nothing ran them.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Hashable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob

from . import notifications, pings, runner
from .conf import conf
from .declared import sync_declared
from .executor import start_fork_server
from .liveness import dead_heartbeats, prune_heartbeats
from .models import (
    PROBLEM_STATUSES,
    Executor,
    Heartbeat,
    Notify,
    Owner,
    Reason,
    Run,
    Schedule,
    Status,
)
from .retention import prune_runs
from .timing import Timing, TimingError
from .triggers import TimingTrigger

logger = logging.getLogger("scheduler.daemon")

JOB_FUNC = "scheduler.runner:run_schedule"
JOBSTORE_RETRY_INTERVAL = 1.0
# Runs ended this long ago at most, and not notified, are mailed by any daemon: their
# own mail was lost (a daemon stopping, or dying, just after it ended them).
MAIL_SWEEP_WINDOW = timedelta(days=1)


def job_id(schedule_id: int) -> str:
    return f"schedule-{schedule_id}"


class ScheduleJobStore(DjangoJobStore):
    """django-apscheduler's job store, made safe to share and to lose the database under.

    APScheduler's scheduler thread dies on an exception from ``update_job`` or
    ``get_next_run_time``, silently ending all scheduling. Several daemons share this
    store, so a job another daemon just removed is normal, and a database outage must
    only delay the next wake-up. Run history is written where the command runs, so
    django-apscheduler's event listeners are not registered.
    """

    def register_event_listeners(self) -> None:
        pass

    def put_jobs(self, jobs: list[Job]) -> None:
        """Insert or replace many jobs with a few statements.

        ``add_job(replace_existing=True)`` costs an INSERT that fails plus a locked
        read and an UPDATE per job, seconds for 10,000 schedules at every start.
        """
        DjangoJob.objects.bulk_create(
            [
                DjangoJob(
                    id=job.id,
                    next_run_time=job.next_run_time,
                    job_state=pickle.dumps(job.__getstate__(), self.pickle_protocol),
                )
                for job in jobs
            ],
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=["next_run_time", "job_state"],
            batch_size=500,
        )

    def get_due_jobs(self, now):
        try:
            return super().get_due_jobs(now)
        except DatabaseError as exc:
            logger.debug("Could not read due jobs: %s", exc)
            return []

    def update_job(self, job) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            pass
        except DatabaseError as exc:
            # The stored fire time stays as it was, so the job comes due again and its
            # missed fire times coalesce into one run once the database is back.
            logger.warning("Could not store the next fire time of %s: %s", job.id, exc)

    def get_next_run_time(self):
        try:
            return super().get_next_run_time()
        except DatabaseError as exc:
            logger.debug("Could not read the next fire time: %s", exc)
            return timezone.now() + timedelta(seconds=JOBSTORE_RETRY_INTERVAL)


class DispatchExecutor(BaseExecutor):
    """Hands a due job's fire time to the daemon instead of calling the job.

    APScheduler's own executors call ``job.func()`` without the fire time, which the run
    needs for its exactly-once claim. Jobs do not coalesce inside APScheduler, so this
    sees every fire time that came due at once: one is a normal (perhaps late) fire;
    several mean the daemon could not fire for a while (database outage, suspended
    process), and the catch-up rules decide what runs. Overlap is decided in the
    database, so APScheduler's per-job instance counting is bypassed too.
    """

    def __init__(self, daemon: SchedulerDaemon) -> None:
        super().__init__()
        self.daemon = daemon

    def submit_job(self, job, run_times: list[datetime]) -> None:
        schedule_id = job.args[0]
        late = timezone.now() - run_times[-1]
        if len(run_times) == 1 and late <= self.daemon.late_fire:
            self.daemon.submit_fire(schedule_id, run_times[0], Reason.SCHEDULED)
        else:
            # Fire times the daemon could not fire when due (suspended, database away).
            self.daemon.submit_catch_up(schedule_id)

    def _do_submit_job(self, job, run_times):  # pragma: no cover - submit_job replaces it
        raise NotImplementedError


def stamps_for(schedule_ids: list[int]) -> dict[int, datetime]:
    """The fire time of each schedule's latest claimed run (what catch-up counts from)."""
    rows = (
        Run.objects.filter(schedule_id__in=schedule_ids)
        .exclude(reason=Reason.MANUAL)
        .values("schedule_id")
        .annotate(latest=Max("scheduled_for"))
    )
    return {row["schedule_id"]: row["latest"] for row in rows}


def catch_up_time(
    schedule: Schedule, stamp: datetime | None, now: datetime, timing: Timing | None = None
) -> datetime | None:
    """The missed fire time to run now, if the schedule's catch-up rules want one.

    The stamp is the latest claimed fire time, or the creation time for a schedule that
    never ran; only the latest missed fire time runs (they coalesce), and only if it is
    inside the schedule's catch-up window.
    """
    timing = timing or schedule.timing
    since = max(stamp, schedule.created_at) if stamp else schedule.created_at
    missed = timing.latest_at_or_before(now, since)
    if missed is None:
        return None
    if not schedule.catch_up:
        count = timing.count_between(since, now)
        logger.info("Schedule %s missed %d fire time(s); catch-up is off", schedule, count)
        return None
    window = schedule.catch_up_window
    if window is not None and (now - missed).total_seconds() > window:
        logger.info(
            "Schedule %s missed %s, outside its %d s catch-up window", schedule, missed, window
        )
        return None
    return missed


class SchedulerDaemon:
    """Construct, then :meth:`run` until :meth:`request_stop` (the command does only that)."""

    def __init__(
        self,
        *,
        poll_interval: float | None = None,
    ) -> None:
        self.poll_interval = poll_interval if poll_interval is not None else conf.POLL_INTERVAL
        self.resync_interval = conf.RESYNC_INTERVAL
        # A fire handed over later than this was not merely queued behind others: the
        # daemon could not fire it in time, and the catch-up rules decide.
        self.late_fire = timedelta(seconds=max(5.0, 3 * self.poll_interval))
        self.stopping = threading.Event()
        self.kill = threading.Event()
        self.pool = ThreadPoolExecutor(
            max_workers=conf.MAX_CONCURRENT_RUNS,
            thread_name_prefix="scheduler-run",
        )
        self.jobstore = ScheduleJobStore()
        self.scheduler = BackgroundScheduler(
            jobstores={"default": self.jobstore},
            executors={"default": DispatchExecutor(self)},
            timezone=UTC,
            jobstore_retry_interval=JOBSTORE_RETRY_INTERVAL,
        )
        self._futures: set[Future] = set()
        self._futures_lock = threading.RLock()  # a cancelled future calls _forget at once
        self._closed = False  # under _futures_lock: shutting down, nothing more is submitted
        self._lost_seen: set[int] = set()
        self._in_flight: dict[Hashable, Future] = {}
        self._known: dict[int, tuple] = {}
        self._replan: set[int] = set()
        self._fingerprint: tuple | None = None
        self._last_full_sync = 0.0
        self._db_down_since: datetime | None = None
        self._last_beat = 0.0
        self._last_prune = time.monotonic()
        self._judge_stale_after = 0.0
        self.heartbeat: Heartbeat | None = None
        self.owner = Owner.this_process()
        self.unfinished = 0
        # Its retry warnings would repeat every second of an outage; _guarded reports it.
        logging.getLogger("django_apscheduler").setLevel(logging.ERROR)

    # -- life cycle ---------------------------------------------------------------------

    def run(self) -> None:
        if conf.EXECUTOR != Executor.TASKS:  # a pure scheduler need not hold one in memory
            start_fork_server()
        self.heartbeat = Heartbeat.start(host=self.owner.host, pid=self.owner.pid)
        self.owner = Owner.this_process(self.heartbeat.pk)
        self.scheduler.start(paused=True)
        try:
            self._guarded(self.sync_declared)
            self._guarded(self.check_liveness)
            self._submit_once("mail", self.mail_missed)
            self._read_schedules()
            self._guarded(self._drop_orphan_jobs)
            self.scheduler.resume()
            logger.info(
                "Scheduler started with %d enabled schedule(s); polling every %.1f s",
                len(self._known),
                self.poll_interval,
            )
            while not self.stopping.wait(self.poll_interval):
                self._guarded(self.tick)
        finally:
            self._shutdown()

    def _read_schedules(self) -> None:
        """Plan every enabled schedule before start-up counts them; a failed read is retried.

        A read that succeeds right after a failure is done again, as coming back from a
        failure forgets what was planned (``_guarded``).
        """
        while not self.stopping.is_set():
            self._guarded(self.sync, full=True)
            if self._db_down_since is None and self._fingerprint is not None:
                return
            if self._db_down_since is not None:
                self.stopping.wait(self.poll_interval)

    def request_stop(self, *, immediate: bool = False) -> None:
        """Stop starting runs; with ``immediate``, also stop the ones running now."""
        self.stopping.set()
        if immediate:
            self.kill.set()

    def tick(self) -> None:
        close_old_connections()
        now = timezone.now()
        if time.monotonic() - self._last_beat >= conf.HEARTBEAT_INTERVAL:
            self.check_liveness()
        due_full = (now.timestamp() - self._last_full_sync) >= self.resync_interval
        self.sync(full=due_full)
        self.start_queued_runs()
        if time.monotonic() - self._last_prune >= conf.PRUNE_INTERVAL:
            self._last_prune = time.monotonic()
            self._submit_once("prune", self._prune, now)
            self._submit_once("mail", self.mail_missed)

    @staticmethod
    def _prune(now: datetime) -> None:
        """In a pool thread: a long prune must not delay heartbeats and pick-ups."""
        pruned = prune_runs(now)
        if pruned:
            logger.info("Pruned %d run(s) past the history limits", pruned)

    def sync_declared(self) -> None:
        """Create or update the schedules declared in ``SCHEDULER["SCHEDULES"]``."""
        report = sync_declared(conf.SCHEDULES)
        for change, names in report.items():
            if names:
                logger.info("Schedules in code %s: %s", change, ", ".join(names))

    def check_liveness(self) -> None:
        """Beat; end the running runs of gone daemons and workers, and overdue ``tasks``
        runs, as interrupted; forget old heartbeats; look for queued runs whose task was
        lost."""
        assert self.heartbeat is not None
        self.heartbeat.beat()
        self._last_beat = time.monotonic()
        now = timezone.now()
        stale_after = timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        dead = dead_heartbeats(
            stale_after=stale_after,
            me=self.heartbeat,
            judge_stale=time.monotonic() >= self._judge_stale_after,
        )
        interrupted = Run.interrupt_orphans(
            dead, message="Interrupted: the scheduler or worker running it stopped or died."
        )
        interrupted += Run.interrupt_overdue(
            now,
            max_age=timedelta(seconds=conf.TASKS_MAX_AGE),
            grace=timedelta(seconds=conf.KILL_GRACE) + stale_after,
            message="Interrupted: still running long past its timeout or TASKS_MAX_AGE; "
            "the worker running it was lost.",
        )
        if interrupted:
            logger.warning(
                "Resolved %d run(s) of gone daemons or workers as interrupted", len(interrupted)
            )
        interrupted += self.end_lost_runs()
        for run in interrupted:
            self._submit(runner.finished, run)  # mail may be slow; the loop must not wait
        prune_heartbeats(keep_for=timedelta(days=7))
        if Run.awaiting_worker(now - stale_after).exists():
            self._submit_once("lost tasks", self._fail_lost_tasks, now - stale_after)

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
        mine = Run.objects.filter(heartbeat=self.heartbeat, status=Status.RUNNING)
        lost = set(mine.values_list("pk", flat=True)) - runner.holding()
        confirmed, self._lost_seen = lost & self._lost_seen, lost
        ended = Run.interrupt(
            sorted(confirmed),
            message="Interrupted: the scheduler running it could not record how it ended "
            "(the database was unavailable).",
        )
        if ended:
            logger.warning("Ended %d run(s) of this scheduler it could not finish", len(ended))
        return recorded + ended

    def mail_missed(self) -> None:
        """In a pool thread: mail about recently ended runs whose mail was never sent.

        Their own mail was lost: cancelled by a daemon's shutdown, or its daemon died
        after ending them. A run is mailed once whoever sends it (``claim_notification``).
        """
        if not settings.ADMINS:
            return
        now = timezone.now()
        settled = now - timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        wanted = (Q(status__in=PROBLEM_STATUSES) & ~Q(schedule__notify=Notify.NEVER)) | Q(
            schedule__notify=Notify.ALWAYS
        )
        missed = (
            Run.objects.filter(
                wanted,
                notified_at__isnull=True,
                finished_at__gte=now - MAIL_SWEEP_WINDOW,
                finished_at__lt=settled,
            )
            .exclude(status__in=[Status.RUNNING, Status.QUEUED, Status.SKIPPED])
            .select_related("schedule")
            .order_by("finished_at")[:100]
        )
        for run in missed:
            logger.info("Mailing about run %s of %s, whose mail was lost", run.pk, run.schedule)
            notifications.mail_admins_about_run(sender=Run, run=run)

    @staticmethod
    def _fail_lost_tasks(enqueued_before: datetime) -> None:
        """In a pool thread: asking the task backend may be slow (Redis far away)."""
        lost = runner.fail_lost_tasks(enqueued_before)
        if lost:
            logger.warning("Failed %d queued run(s) whose task was lost", len(lost))

    def _guarded(self, step, **kwargs) -> None:
        """Run a loop step; a database outage is logged once, not once per tick."""
        try:
            step(**kwargs)
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
            self._db_down_since = None
            # Re-plan every schedule: fire times lost in the outage follow catch-up rules.
            self._known = {}
            self._fingerprint = None
            # Other daemons were cut off as well; give them time to beat again.
            self._judge_stale_after = time.monotonic() + conf.HEARTBEAT_TIMEOUT

    def _shutdown(self) -> None:
        """Let running runs finish within ``SHUTDOWN_GRACE``, then stop them.

        Fire times not yet started stay unclaimed, so catch-up runs them at the next start.
        """
        logger.info("Scheduler stopping: no new runs start")
        self.scheduler.shutdown(wait=False)
        with self._futures_lock:
            # Under the lock, so no fire is submitted after the snapshot unseen (and left
            # to start its command unwaited for). Mail cancelled here is sent later by a
            # daemon's ``mail_missed``.
            self._closed = True
            self.pool.shutdown(wait=False, cancel_futures=True)
            running = [future for future in self._futures if not future.done()]
        if running and not self.kill.is_set():
            logger.info(
                "Waiting up to %.0f s for %d running run(s)", conf.SHUTDOWN_GRACE, len(running)
            )
            deadline = time.monotonic() + conf.SHUTDOWN_GRACE
            while time.monotonic() < deadline and not self.kill.is_set():
                if not futures.wait(running, timeout=0.1).not_done:
                    break
        self.kill.set()
        still_running = futures.wait(running, timeout=conf.KILL_GRACE + 2).not_done
        self.unfinished = len(still_running)
        try:
            if still_running:
                # Only thread-executor runs cannot be stopped; the process exits under them.
                interrupted = Run.interrupt_orphans(
                    [self.heartbeat.pk],
                    message="Interrupted: the scheduler exited while this run was going.",
                )
                logger.warning("Abandoned %d run(s) that could not be stopped", len(interrupted))
                for run in interrupted:
                    runner.finished(run)
            self.heartbeat.stop()
        except DatabaseError as exc:
            logger.error("Could not record the shutdown: %s", exc)
        pings.drain(conf.PING_TIMEOUT)
        logger.info("Scheduler stopped")

    # -- schedules -> jobs ----------------------------------------------------------------

    def sync(self, *, full: bool = False) -> None:
        """Bring APScheduler's jobs in line with the enabled schedules in the database.

        A cheap fingerprint query runs every tick; the schedule rows are read only when it
        changes, and in full every ``RESYNC_INTERVAL`` in case a row was edited in a way
        that does not move ``updated_at`` (``QuerySet.update()``, raw SQL).
        """
        fingerprint = tuple(
            Schedule.objects.aggregate(
                count=Count("id"), latest=Max("updated_at"), ids=Max("id")
            ).values()
        )
        replan, self._replan = self._replan, set()
        if not full and not replan and fingerprint == self._fingerprint:
            return
        now = timezone.now()
        for schedule_id in replan:
            self._known.pop(schedule_id, None)
        # What planning depends on (see the docstring on edits that keep updated_at).
        current = {
            row[0]: row[1:]
            for row in Schedule.objects.filter(enabled=True).values_list(
                "id", "updated_at", "cron", "interval", "timezone", "created_at"
            )
        }
        for schedule_id in self._known.keys() - current.keys():
            self._remove_job(schedule_id)
            logger.info("Schedule %s removed or disabled", schedule_id)
        changed = [sid for sid, version in current.items() if self._known.get(sid) != version]
        for start in range(0, len(changed), 500):
            # One transaction per chunk: the job store's writes commit together instead
            # of one by one (on SQLite, one fsync per chunk rather than per schedule).
            with transaction.atomic():
                self._plan(changed[start : start + 500], now)
        self._known = current
        self._fingerprint = fingerprint
        if full:
            self._last_full_sync = now.timestamp()

    def _plan(self, schedule_ids: list[int], now: datetime) -> None:
        stamps = stamps_for(schedule_ids)
        jobs = []
        for schedule in Schedule.objects.filter(pk__in=schedule_ids, enabled=True):
            try:
                timing = schedule.timing
                missed = catch_up_time(schedule, stamps.get(schedule.pk), now, timing)
                next_fire = timing.next_fire_time(now)
            except (TimingError, ArithmeticError, ValueError) as exc:
                # One row written around validation must not stop the others.
                logger.error("Schedule %s cannot be scheduled: %s", schedule, exc)
                self._remove_job(schedule.pk)
                continue
            if missed is not None:
                logger.info("Schedule %s catches up its missed run of %s", schedule, missed)
                self.submit_fire(schedule.pk, missed, Reason.CATCH_UP)
            if next_fire is None:
                self._remove_job(schedule.pk)
                continue
            jobs.append(
                Job(
                    self.scheduler,
                    id=job_id(schedule.pk),
                    func=JOB_FUNC,
                    trigger=TimingTrigger(timing),
                    executor="default",
                    args=[schedule.pk],
                    kwargs={},
                    name=schedule.name,
                    misfire_grace_time=None,
                    coalesce=False,
                    max_instances=1,
                    next_run_time=next_fire,
                )
            )
        self.jobstore.put_jobs(jobs)
        # Woken before the commit, APScheduler's thread would find no job and sleep on.
        transaction.on_commit(self.scheduler.wakeup)

    def _drop_orphan_jobs(self) -> None:
        """Remove stored jobs of schedules deleted or disabled while no daemon ran."""
        wanted = {job_id(schedule_id) for schedule_id in self._known}
        orphans = [pk for pk in DjangoJob.objects.values_list("id", flat=True) if pk not in wanted]
        for start in range(0, len(orphans), 500):
            DjangoJob.objects.filter(id__in=orphans[start : start + 500]).delete()

    def _remove_job(self, schedule_id: int) -> None:
        try:
            self.scheduler.remove_job(job_id(schedule_id))
        except JobLookupError:
            pass

    # -- running ------------------------------------------------------------------------

    def submit_fire(self, schedule_id: int, fire_time: datetime, reason: str) -> None:
        if not self.stopping.is_set():
            self._submit(self._fire, schedule_id, fire_time, reason)

    def _fire(self, schedule_id: int, fire_time: datetime, reason: str) -> None:
        if self.stopping.is_set():
            return  # not claimed: caught up at the next start
        try:
            runner.run_schedule(
                schedule_id,
                fire_time,
                reason,
                owner=self.owner,
                stop=self.kill,
                stopping=self.stopping,
            )
        except DatabaseError as exc:
            # Not claimed, so re-planned with catch-up at the next tick instead of lost.
            logger.warning("Could not claim %s of schedule %s: %s", fire_time, schedule_id, exc)
            self._replan.add(schedule_id)

    def submit_catch_up(self, schedule_id: int) -> None:
        if not self.stopping.is_set():
            self._submit(self._catch_up, schedule_id)

    def _catch_up(self, schedule_id: int) -> None:
        if self.stopping.is_set():
            return
        try:
            schedule = Schedule.objects.filter(pk=schedule_id, enabled=True).first()
            if schedule is None:
                return
            stamp = stamps_for([schedule_id]).get(schedule_id)
            missed = catch_up_time(schedule, stamp, timezone.now())
            if missed is not None:
                logger.info("Schedule %s catches up its missed run of %s", schedule, missed)
                runner.run_schedule(
                    schedule_id,
                    missed,
                    Reason.CATCH_UP,
                    owner=self.owner,
                    stop=self.kill,
                    stopping=self.stopping,
                )
        except DatabaseError as exc:
            # Nothing claimed: re-planned with catch-up at the next tick instead of lost.
            logger.warning("Could not catch up schedule %s: %s", schedule_id, exc)
            self._replan.add(schedule_id)

    def start_queued_runs(self) -> None:
        """Start queued manual runs here; hand queued ``tasks`` runs to the task backend.

        Runs already handed over wait for a worker, not for us, unless that hand-over got
        no task id within a heartbeat timeout: its daemon died while enqueueing.
        """
        self._in_flight = {key: job for key, job in self._in_flight.items() if not job.done()}
        retry_before = timezone.now() - timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        queued = Run.objects.filter(Run.open_hand_over(retry_before), status=Status.QUEUED)
        rows = queued.order_by("created_at").values_list("id", "executor", "reason")[:100]
        for run_id, executor, reason in rows:
            if executor == Executor.TASKS:
                self._submit_once(("run", run_id), self._hand_over, run_id, retry_before)
            elif reason == Reason.MANUAL:
                self._submit_once(
                    ("run", run_id),
                    runner.run_queued,
                    run_id,
                    owner=self.owner,
                    stop=self.kill,
                    stopping=self.stopping,
                )

    @staticmethod
    def _hand_over(run_id: int, retry_before: datetime) -> None:
        run = Run.objects.select_related("schedule").filter(pk=run_id).first()
        if run is not None:
            runner.hand_over(run, retry_before=retry_before)

    def _submit_once(self, key: Hashable, func, *args, **kwargs) -> None:
        """Submit, unless the work last submitted under ``key`` has not finished yet.

        The loop thread alone reads and writes ``_in_flight`` (finished entries are
        dropped each tick by ``start_queued_runs``), so check-then-submit needs no lock.
        """
        previous = self._in_flight.get(key)
        if previous is not None and not previous.done():
            return
        future = self._submit(func, *args, **kwargs)
        if future is not None:
            self._in_flight[key] = future

    def _submit(self, func, *args, **kwargs) -> Future | None:
        """Run ``func`` in the pool; None once shutdown began (see ``_shutdown``)."""
        with self._futures_lock:
            if self._closed:
                return None
            future = self.pool.submit(self._call, func, *args, **kwargs)
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future) -> None:
        with self._futures_lock:
            self._futures.discard(future)

    @staticmethod
    def _call(func, *args, **kwargs) -> None:
        """Run in a pool thread, with a fresh connection check before and after.

        A command run in the thread executor uses this thread's connection too, so one it
        broke or left behind is dealt with here.
        """
        close_old_connections()
        name = getattr(func, "__qualname__", func)
        try:
            func(*args, **kwargs)
        except DatabaseError as exc:
            # Fire times are not claimed, so not lost; upkeep is simply tried again later.
            logger.warning("Database unavailable for %s%s: %s", name, args, exc)
        except Exception:
            logger.exception("%s%s failed in the scheduler itself", name, args)
        finally:
            close_old_connections()
