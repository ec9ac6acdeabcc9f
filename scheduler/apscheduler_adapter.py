"""Everything APScheduler: the daemon's only module that imports it.

APScheduler hosts one job per planned schedule, persisted in django-apscheduler's job
store, and wakes up at fire times; it runs no command. Its fire times come from
:mod:`scheduler.timing` (:class:`TimingTrigger`), so the daemon fires exactly when
``Schedule.next_fire_times`` says it will, and a due job only hands its fire times to a
callback (:class:`DispatchExecutor`), which starts the run. :class:`APSchedulerJobs` is
the face the rest of the daemon sees: start, resume, shut down, put and remove jobs.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from django.db import DatabaseError, transaction
from django.db.models import BigIntegerField, Case, Q, QuerySet, When
from django.db.models.functions import Cast, Mod, Substr
from django.db.models.lookups import Exact
from django.utils import timezone
from django_apscheduler import util
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob

from . import bulk
from .shares import EVERYTHING, Share
from .timing import Timing

logger = logging.getLogger("scheduler.daemon")

# Stored in each job: APScheduler requires a callable, though DispatchExecutor never
# calls it.
JOB_FUNC = "scheduler.runner:run_schedule"
JOB_PREFIX = "schedule-"
JOBSTORE_RETRY_INTERVAL = 1.0

# Called once per wake-up with, for each schedule due, its id, its fire times come due,
# and the current time.
OnDue = Callable[[list[tuple[int, list[datetime], datetime]]], None]


def job_id(schedule_id: int) -> str:
    """Return the id of the job that fires ``schedule_id``."""
    return f"{JOB_PREFIX}{schedule_id}"


def owned_jobs(shares: Iterable[Share]) -> QuerySet[Any]:
    """Return the stored jobs of the schedules in ``shares``."""
    jobs: QuerySet[Any] = DjangoJob.objects.all()
    shares = frozenset(shares)
    if EVERYTHING in shares:
        return jobs
    # An id of another shape (a job not of this app's) must not fail the cast on PostgreSQL.
    number = Case(
        When(
            id__regex=rf"^{JOB_PREFIX}[0-9]{{1,18}}$",
            then=Cast(Substr("id", len(JOB_PREFIX) + 1), BigIntegerField()),
        ),
        output_field=BigIntegerField(),
    )
    owned = Q()
    for share in sorted(shares, key=lambda share: (share.count, share.index)):
        owned |= Q(Exact(Mod(number, share.count, output_field=BigIntegerField()), share.index))
    return jobs.filter(owned)


class TimingTrigger(BaseTrigger):  # type: ignore[misc]
    """Fire at the times :class:`scheduler.timing.Timing` computes."""

    # Stored jobs name their trigger's class by this path: daemons of earlier versions
    # (which defined it there) sharing the database must read jobs this one writes, and
    # this one theirs. django-apscheduler deletes a job it cannot unpickle.
    # scheduler/triggers.py keeps the name importable.
    __module__ = "scheduler.triggers"

    def __init__(self, timing: Timing) -> None:
        self.timing = timing

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """Return the fire time after the previous one (even if past), or after ``now``."""
        # After a fire, the next one follows it even if that is already past: APScheduler
        # then hands the late ones over together instead of dropping them.
        try:
            return self.timing.next_fire_time(previous_fire_time or now)
        except (ArithmeticError, ValueError) as exc:
            # Raised here, it would end APScheduler's thread and all scheduling with it;
            # no next fire time removes this job alone.
            logger.error("%s has no next fire time: %s", self, exc)
            return None

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "timing": self.timing}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.timing = state["timing"]

    def __str__(self) -> str:
        if self.timing.cron:
            return f"cron[{self.timing.cron} {self.timing.timezone}]"
        return f"interval[{self.timing.interval}s]"


class ScheduleJobStore(DjangoJobStore):  # type: ignore[misc]
    """django-apscheduler's job store, made safe to share and to lose the database under.

    APScheduler's scheduler thread dies on an exception from ``update_job`` or
    ``get_next_run_time``, silently ending all scheduling. Several daemons share this
    store, so a job another daemon just removed is normal, and a database outage must
    only delay the next wake-up. Run history is written where the command runs, so
    django-apscheduler's event listeners are not registered. Only the jobs of ``shares``
    (:mod:`scheduler.shares`) come due here: daemons divide the schedules.
    """

    def __init__(self, on_wake_up_done: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.shares: frozenset[Share] = frozenset({EVERYTHING})
        self.storing_fires = True
        # Next fire times of the jobs fired at this wake-up, stored together afterwards.
        self._fired: dict[str, Job] = {}
        self.on_wake_up_done = on_wake_up_done

    def register_event_listeners(self) -> None:
        pass

    def put_jobs(self, states: list[dict[str, Any]]) -> None:
        """Insert or replace many jobs, given as their ``Job.__getstate__()``, at once.

        ``add_job(replace_existing=True)`` costs an INSERT that fails plus a locked
        read and an UPDATE per job, seconds for 10,000 schedules at every start.
        """
        bulk.upsert(
            DjangoJob,
            ["id", "next_run_time", "job_state"],
            [(state["id"], state["next_run_time"], self._pickled(state)) for state in states],
            unique=["id"],
        )

    def _pickled(self, state: dict[str, Any]) -> bytes:
        return pickle.dumps(state, self.pickle_protocol)

    def get_due_jobs(self, now: datetime) -> list[Job]:
        due = owned_jobs(self.shares).filter(
            next_run_time__lte=util.get_django_internal_datetime(now)
        )
        try:
            jobs: list[Job] = self._get_jobs(pk__in=due.values("pk"))
        except DatabaseError as exc:
            logger.debug("Could not read due jobs: %s", exc)
            return []
        return jobs

    def update_job(self, job: Job) -> None:
        """Keep a fired job's next fire time until :meth:`get_next_run_time` stores all.

        APScheduler calls this once per fired job and then ``get_next_run_time`` once,
        so a thousand jobs due at once cost a few statements rather than four thousand.
        """
        self._fired[job.id] = job

    def get_next_run_time(self) -> datetime | None:
        """Finish a wake-up (APScheduler calls this after handing over the due jobs):
        dispatch them, store their next fire times, and return the earliest."""
        self.on_wake_up_done()
        self.store_fired()
        try:
            next_run_time: datetime | None = self._next_run_time()
        except DatabaseError as exc:
            logger.debug("Could not read the next fire time: %s", exc)
            return timezone.now() + timedelta(seconds=JOBSTORE_RETRY_INTERVAL)
        return next_run_time

    @util.retry_on_db_operational_error  # type: ignore[untyped-decorator]
    def _next_run_time(self) -> datetime | None:
        times = owned_jobs(self.shares).filter(next_run_time__isnull=False)
        first = times.order_by("next_run_time").values_list("next_run_time", flat=True).first()
        if first is None:
            return None
        next_run_time: datetime = util.get_apscheduler_datetime(first, self._scheduler)
        return next_run_time

    def store_fired(self) -> None:
        """Store the next fire times kept by :meth:`update_job`, in one transaction.

        Jobs another daemon removed meanwhile stay removed (an update, not an upsert).
        """
        jobs, self._fired = list(self._fired.values()), {}
        if not jobs or not self.storing_fires:
            return
        try:
            with transaction.atomic():
                bulk.update_by_pk(
                    DjangoJob,
                    ["next_run_time", "job_state"],
                    (
                        (job.id, (job.next_run_time, self._pickled(job.__getstate__())))
                        for job in jobs
                    ),
                )
        except DatabaseError as exc:
            # The stored fire times stay as they were, so the jobs come due again and
            # their missed fire times are handed over together once the database is back.
            logger.warning("Could not store the next fire time of %d job(s): %s", len(jobs), exc)


class DispatchExecutor(BaseExecutor):  # type: ignore[misc]
    """Collect the due jobs' fire times of a wake-up; :meth:`dispatch` hands them on.

    APScheduler's own executors call ``job.func()`` without the fire time, which the run
    needs for its exactly-once claim. Jobs do not coalesce inside APScheduler, so this
    sees every fire time that came due at once. Overlap is decided in the database, so
    APScheduler's per-job instance counting is bypassed too.
    """

    def __init__(self, on_due: OnDue) -> None:
        super().__init__()
        self.on_due = on_due
        self._due: list[tuple[int, list[datetime], datetime]] = []

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._due.append((job.args[0], run_times, timezone.now()))

    def dispatch(self) -> None:
        """Hand the fire times collected since the last call to ``on_due``, in one call."""
        due, self._due = self._due, []
        if due:
            self.on_due(due)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:  # pragma: no cover
        raise NotImplementedError  # submit_job replaces it


@dataclass(frozen=True)
class JobPlan:
    """A schedule's job as it is to be stored: what fires it, and when next."""

    schedule_id: int
    name: str
    timing: Timing
    next_fire: datetime


class APSchedulerJobs:
    """APScheduler's background scheduler holding one job per planned schedule.

    ``on_due`` is called in APScheduler's thread, once per wake-up, with the fire times
    of the jobs that came due; it must return at once.
    """

    def __init__(self, on_due: OnDue) -> None:
        executor = DispatchExecutor(on_due)
        self.store = ScheduleJobStore(on_wake_up_done=executor.dispatch)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": self.store},
            executors={"default": executor},
            timezone=UTC,
            jobstore_retry_interval=JOBSTORE_RETRY_INTERVAL,
        )
        # Its retry warnings would repeat every second of an outage; the daemon reports
        # the outage once.
        logging.getLogger("django_apscheduler").setLevel(logging.ERROR)

    def start(self, *, paused: bool = True) -> None:
        """Start APScheduler's thread; ``paused``, it fires nothing until :meth:`resume`."""
        self.scheduler.start(paused=paused)

    def resume(self) -> None:
        """Start firing due jobs."""
        self.scheduler.resume()

    def shutdown(self) -> None:
        """Stop firing; do not wait for APScheduler's thread."""
        self.scheduler.shutdown(wait=False)

    def put(self, plans: list[JobPlan]) -> None:
        """Store these jobs, replacing any of the same schedules, and wake APScheduler."""
        if plans:
            self.store.put_jobs(self._states(plans))
        # Woken before the commit, APScheduler's thread would find no job and sleep on.
        transaction.on_commit(self.scheduler.wakeup)

    def _states(self, plans: list[JobPlan]) -> list[dict[str, Any]]:
        """Return the stored state of each plan's job.

        APScheduler checks and serialises the first job; the others differ from it only
        in the fields replaced here. Building a ``Job`` per schedule cost more than storing
        it: each inspects the signature of the callable, the same for all.
        """
        first = plans[0]
        template = Job(
            self.scheduler,
            id=job_id(first.schedule_id),
            func=JOB_FUNC,
            trigger=TimingTrigger(first.timing),
            executor="default",
            args=[first.schedule_id],
            kwargs={},
            name=first.name,
            misfire_grace_time=None,
            coalesce=False,
            max_instances=1,
            next_run_time=first.next_fire,
        ).__getstate__()
        return [
            {
                **template,
                "id": job_id(plan.schedule_id),
                "trigger": TimingTrigger(plan.timing),
                "args": [plan.schedule_id],
                "name": plan.name,
                "next_run_time": plan.next_fire,
            }
            for plan in plans
        ]

    def stop_storing_fires(self) -> None:
        """Leave the jobs found due from now on due in the store (this daemon is stopping).

        Safe from a signal handler.
        """
        self.store.storing_fires = False

    def divide(self, shares: frozenset[Share]) -> None:
        """Fire only the jobs of the schedules in ``shares`` from now on."""
        if shares != self.store.shares:
            self.store.shares = shares
            self.scheduler.wakeup()

    def remove(self, schedule_id: int) -> None:
        """Remove the job of ``schedule_id``, if there is one."""
        try:
            self.scheduler.remove_job(job_id(schedule_id))
        except JobLookupError:
            pass

    def remove_all_but(self, schedule_ids: Iterable[int]) -> None:
        """Remove every stored job that is not one of these schedules'."""
        wanted = {job_id(schedule_id) for schedule_id in schedule_ids}
        orphans = [pk for pk in DjangoJob.objects.values_list("id", flat=True) if pk not in wanted]
        for start in range(0, len(orphans), 500):
            DjangoJob.objects.filter(id__in=orphans[start : start + 500]).delete()

    def next_fire_times(self) -> dict[int, datetime | None]:
        """Return the next fire time of each stored job, by schedule id."""
        return {job.args[0]: job.next_run_time for job in self.scheduler.get_jobs()}
