"""Schedules people edit, and the runs the daemon records for them.

State changes of a run are methods here (``claim``, ``start_queued``, ``take_hand_over``,
``finish``, ``fail``, ``refuse``, ``interrupt_orphans``…) so that the daemon, the workers,
the admin and the command line move a run through its life the same way, and the
database, not process memory, decides who runs a fire time.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.core.validators import MaxValueValidator
from django.db import IntegrityError, models, transaction
from django.db.models import DurationField, ExpressionWrapper, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Concat, Now
from django.utils import timezone as dj_timezone

from .commands import CommandNotAllowed, check_allowed, check_arguments
from .conf import EXECUTORS, conf
from .timing import MAX_INTERVAL, Timing, TimingError, expand_cron, get_zone

if TYPE_CHECKING:
    from .executor import ExecutionResult


def default_timezone() -> str:
    return settings.TIME_ZONE


class Overlap(models.TextChoices):
    SKIP = "skip", "Skip a fire time while the previous run is still running"
    ALLOW = "allow", "Allow runs to overlap"


class Executor(models.TextChoices):
    DEFAULT = "", 'Settings default (SCHEDULER["EXECUTOR"], normally process)'
    PROCESS = "process", "Child process (can be timed out and killed)"
    THREAD = "thread", "Thread inside the daemon (tiny, frequent commands)"
    TASKS = "tasks", "Django Tasks backend (a worker runs it, on any machine)"


class Notify(models.TextChoices):
    FAILURES = "failures", "When a run fails, times out or is interrupted"
    ALWAYS = "always", "After every run"
    NEVER = "never", "Never"


# Upper bounds of the number fields: far beyond any real schedule, and small enough that
# no date arithmetic with them can leave the range of ``datetime``.
MAX_CATCH_UP_WINDOW = 365 * 24 * 3600
MAX_TIMEOUT = 365 * 24 * 3600
MAX_JITTER = 24 * 3600
MAX_KEEP_RUNS = 1_000_000
MAX_KEEP_DAYS = 36_500
MAX_RETRIES = 10
# The first retry waits retry_delay, each later one twice the one before, never more than this.
MAX_RETRY_DELAY = 24 * 3600


def at_most(limit: int, unit: str, meaning: str = "") -> MaxValueValidator:
    """A validator refusing values above ``limit``, with a message that gives the bound."""
    return MaxValueValidator(limit, f"At most {limit} {unit}{meaning}.")


class ScheduleQuerySet(models.QuerySet):
    def with_last_run(self) -> ScheduleQuerySet:
        """Each schedule with ``last_status`` and ``last_run_at`` of its latest run, in the
        same query (admin's list and ``schedules list`` would otherwise ask per row)."""
        latest = Run.objects.filter(schedule=OuterRef("pk")).order_by("-scheduled_for", "-id")
        return self.annotate(
            last_status=Subquery(latest.values("status")[:1]),
            last_run_at=Subquery(latest.values("scheduled_for")[:1]),
        )


class Schedule(models.Model):
    name = models.CharField(max_length=200, unique=True)
    command = models.CharField(max_length=200, help_text="Management command name.")
    args = models.JSONField(
        default=list,
        blank=True,
        help_text='Arguments after the command name, as a JSON list: ["--days", "7"].',
    )
    cron = models.CharField(
        max_length=200,
        blank=True,
        help_text="crontab(5) expression such as '30 3 * * *', or @hourly, @daily, …",
    )
    interval = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[at_most(MAX_INTERVAL, "seconds", " (365 days); use cron for longer")],
        help_text="Run every this many seconds (instead of cron); 1 to 31536000 (365 days).",
    )
    timezone = models.CharField(
        max_length=64, default=default_timezone, help_text="IANA name, e.g. Europe/Berlin."
    )
    enabled = models.BooleanField(default=True)
    catch_up = models.BooleanField(
        "catch-up",
        default=True,
        help_text="Run once at start-up if fire times were missed while nothing ran them.",
    )
    catch_up_window = models.PositiveIntegerField(
        "catch-up window",
        null=True,
        blank=True,
        validators=[at_most(MAX_CATCH_UP_WINDOW, "seconds", " (365 days)")],
        help_text="Seconds, up to 31536000 (365 days): a missed fire time older than this is "
        "not caught up. Empty: no limit.",
    )
    overlap = models.CharField(max_length=5, choices=Overlap.choices, default=Overlap.SKIP)
    timeout = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[at_most(MAX_TIMEOUT, "seconds", " (365 days)")],
        help_text="Seconds after which a run is stopped, 1 to 31536000 (365 days); "
        "empty: no limit.",
    )
    jitter = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[at_most(MAX_JITTER, "seconds", " (one day)")],
        help_text="Seconds, up to 86400 (one day): start each run after a random delay up to this.",
    )
    executor = models.CharField(
        max_length=16, choices=Executor.choices, default=Executor.DEFAULT, blank=True
    )
    notify = models.CharField(
        max_length=10,
        choices=Notify.choices,
        default=Notify.FAILURES,
        help_text="When to mail ADMINS about a run of this schedule.",
    )
    ping_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Dead-man monitor (healthchecks.io style): /start, then the URL or /fail.",
    )
    keep_runs = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[at_most(MAX_KEEP_RUNS, "runs")],
        help_text="Runs kept in history, up to 1000000; empty: the settings default.",
    )
    keep_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[at_most(MAX_KEEP_DAYS, "days", " (100 years, to keep runs for good)")],
        help_text="Days runs are kept, up to 36500 (100 years: use that to keep them for "
        "good); empty: the settings default.",
    )
    defined_in_code = models.BooleanField(
        default=False,
        editable=False,
        help_text='Created from SCHEDULER["SCHEDULES"]; the fields it sets are read-only.',
    )
    created_at = models.DateTimeField(default=dj_timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    retries = models.PositiveSmallIntegerField(
        default=0,
        validators=[at_most(MAX_RETRIES, "retries")],
        help_text="Run a failed or timed-out run again up to this many times, 0 to 10.",
    )
    retry_delay = models.PositiveIntegerField(
        "retry delay",
        default=60,
        validators=[at_most(MAX_RETRY_DELAY, "seconds", " (one day)")],
        help_text="Seconds before the first retry, 1 to 86400 (one day); each later retry "
        "waits twice as long as the one before, at most one day.",
    )

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("run_schedule", "Can run a schedule now")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(cron="") & Q(interval__isnull=False))
                | (~Q(cron="") & Q(interval__isnull=True)),
                name="scheduler_schedule_cron_xor_interval",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def timing(self) -> Timing:
        return Timing(
            cron=self.cron or None,
            interval=self.interval,
            timezone=self.timezone,
            anchor=self.created_at,
        )

    def next_fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after``, in the schedule's timezone."""
        zone = get_zone(self.timezone)
        return [fire.astimezone(zone) for fire in self.timing.next_fire_times(after, count)]

    def effective_executor(self) -> str:
        return self.executor or conf.EXECUTOR

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.cron and self.interval is not None:
            errors["cron"] = "Give a cron expression or an interval, not both."
        elif not self.cron and self.interval is None:
            errors["cron"] = "Give a cron expression or an interval."
        elif self.cron:
            try:
                self.cron = " ".join(self.cron.split())
                expand_cron(self.cron)
            except TimingError as exc:
                errors["cron"] = str(exc)
        elif self.interval is not None and self.interval <= 0:
            errors["interval"] = "The interval must be a positive number of seconds."
        try:
            get_zone(self.timezone)
        except TimingError as exc:
            errors["timezone"] = str(exc)
        for field in ("timeout", "jitter", "catch_up_window"):
            value = getattr(self, field)
            if value is not None and value < 0:
                errors[field] = "Must not be negative."
        if self.timeout == 0:
            errors["timeout"] = "Must be at least one second, or empty for no timeout."
        if self.retries and not self.retry_delay:
            errors["retry_delay"] = "Must be at least one second when the schedule retries."
        if self.timeout and self.effective_executor() == Executor.THREAD:
            errors["timeout"] = (
                "A thread cannot be stopped from outside; use the process executor "
                "for a schedule with a timeout."
            )
        if self.effective_executor() not in EXECUTORS:
            errors["executor"] = f"Unknown executor {self.effective_executor()!r}."
        elif self.effective_executor() == Executor.TASKS:
            from .checks import tasks_backend_problem

            problem = tasks_backend_problem()
            if problem:
                errors["executor"] = problem
        if not isinstance(self.args, list) or not all(isinstance(a, str) for a in self.args):
            errors["args"] = 'Arguments must be a JSON list of strings, e.g. ["--days", "7"].'
        if self.command:
            try:
                check_allowed(self.command)
            except CommandNotAllowed as exc:
                errors["command"] = str(exc)
            else:
                if "args" not in errors:
                    try:
                        check_arguments(self.command, self.args)
                    except CommandError as exc:
                        errors["args"] = f"The command refuses these arguments: {exc}"
        if errors:
            raise ValidationError(errors)


def local_pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


class HeartbeatQuerySet(models.QuerySet):
    """Heartbeats judged by the database's clock, never by the reading host's.

    ``last_beat`` is written with the database's ``Now()``, so a host whose clock is
    minutes off neither looks dead nor judges a live daemon dead.
    """

    def with_age(self) -> HeartbeatQuerySet:
        """Annotate ``age``: the time since the last beat, by the database's clock."""
        return self.annotate(
            age=ExpressionWrapper(Now() - F("last_beat"), output_field=DurationField())
        )

    def stale(self, stale_after: timedelta) -> HeartbeatQuerySet:
        return self.filter(Q(stopped_at__isnull=False) | Q(last_beat__lt=Now() - stale_after))


class Heartbeat(models.Model):
    """One row per daemon process, or per run in a terminal or task worker: how daemons
    tell a dead owner of a running run from a busy one."""

    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField("PID")
    # Containers sharing a host name (network_mode: host) can reuse each other's pids.
    pid_namespace = models.CharField(max_length=64, blank=True, default=local_pid_namespace)
    kind = models.CharField(
        max_length=8,
        default="daemon",
        help_text='"daemon"; "cli" for a terminal run; "worker" for a task worker\'s run.',
    )
    started_at = models.DateTimeField(default=dj_timezone.now)
    last_beat = models.DateTimeField(default=dj_timezone.now, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    objects = HeartbeatQuerySet.as_manager()

    class Meta:
        ordering = ["-last_beat"]
        verbose_name = "daemon"

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    @classmethod
    def start(cls, *, host: str, pid: int, kind: str = "daemon") -> Heartbeat:
        """A new heartbeat, its first beat stamped by the database's clock."""
        heartbeat = cls.objects.create(host=host, pid=pid, kind=kind, last_beat=Now())
        heartbeat.refresh_from_db(fields=["last_beat"])
        return heartbeat

    def beat(self) -> None:
        """Beat by the database's clock (see ``HeartbeatQuerySet``)."""
        Heartbeat.objects.filter(pk=self.pk).update(last_beat=Now())

    def stop(self) -> None:
        self.stopped_at = dj_timezone.now()
        Heartbeat.objects.filter(pk=self.pk).update(stopped_at=self.stopped_at)

    def is_fresh(self, stale_after: timedelta) -> bool:
        """Needs ``age`` (``Heartbeat.objects.with_age()``): judged by the database's clock."""
        return self.stopped_at is None and self.age <= stale_after


@dataclass(frozen=True)
class Owner:
    """The process that runs a command, recorded on its run.

    A run whose owner's heartbeat went stale (or whose process is gone) is resolved as
    ``interrupted`` by any live daemon, so no run stays ``running`` forever.
    """

    host: str
    pid: int
    heartbeat_id: int | None = None

    @classmethod
    def this_process(cls, heartbeat_id: int | None = None) -> Owner:
        return cls(socket.gethostname(), os.getpid(), heartbeat_id)

    def fields(self) -> dict:
        return {"host": self.host, "pid": self.pid, "heartbeat_id": self.heartbeat_id}


class Reason(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    CATCH_UP = "catch_up", "Catch-up"
    MANUAL = "manual", "Manual"
    RETRY = "retry", "Retry"
    BACKFILL = "backfill", "Backfill"


# Runs created ``queued`` for a daemon to start (``start_queued``), not claimed at a fire time.
QUEUED_REASONS = frozenset({Reason.MANUAL, Reason.RETRY, Reason.BACKFILL})


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    INTERRUPTED = "interrupted", "Interrupted"
    SKIPPED = "skipped", "Skipped"


SKIPPED_MESSAGE = (
    "Skipped: the previous run of this schedule was still running (or queued for a worker)."
)

PROBLEM_STATUSES = frozenset({Status.FAILED, Status.TIMED_OUT, Status.INTERRUPTED})


class Run(models.Model):
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    command = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    scheduled_for = models.DateTimeField()
    created_at = models.DateTimeField(default=dj_timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    stdout = models.TextField(blank=True)
    stderr = models.TextField(blank=True)
    executor = models.CharField(max_length=16, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField("PID", null=True, blank=True)
    heartbeat = models.ForeignKey(
        Heartbeat, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the run was handed to the task backend."
    )
    task_id = models.CharField(
        "task ID", max_length=255, blank=True, help_text="The task backend's id for this run."
    )
    # The schedule's limits as they were when this run was taken: an edit of the schedule
    # applies to later runs, not to one already going.
    timeout = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds this run may take (the schedule's, at claim)."
    )
    jitter = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds of start delay allowed (the schedule's, at claim).",
    )
    attempt = models.PositiveSmallIntegerField(
        default=1, help_text="1 for a first attempt; 2 for its first retry, and so on."
    )
    first_attempt = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="retry_runs",
        help_text="The run this one retries (the first attempt).",
    )
    run_after = models.DateTimeField(
        null=True, blank=True, help_text="A queued run does not start before this (a retry)."
    )
    rerun_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
        help_text="The failed run of the same fire time this backfill run reruns.",
    )

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"],
                # Retries and reruns repeat a fire time on purpose; each has its own
                # once-only rule below.
                condition=~Q(reason__in=["manual", "retry"]) & Q(rerun_of__isnull=True),
                name="scheduler_run_once_per_fire_time",
            ),
            models.UniqueConstraint(
                fields=["first_attempt", "attempt"],
                condition=Q(first_attempt__isnull=False),
                name="scheduler_run_once_per_attempt",
            ),
            models.UniqueConstraint(
                fields=["rerun_of"],
                condition=Q(rerun_of__isnull=False),
                name="scheduler_run_rerun_once",
            ),
        ]
        indexes = [
            models.Index(fields=["schedule", "status"], name="scheduler_run_sched_status"),
            # Latest runs of a schedule (admin's last run, success rate; catch-up stamps).
            models.Index(
                fields=["schedule", "-scheduled_for", "-id"], name="scheduler_run_sched_latest"
            ),
            models.Index(fields=["-scheduled_for", "-id"], name="scheduler_run_latest"),
        ]

    def __str__(self) -> str:
        line = " ".join([self.command, *self.args])
        when = f"{self.scheduled_for:%Y-%m-%d %H:%M:%S}"
        return f"#{self.pk} {line} @ {when} ({self.get_status_display()})"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @classmethod
    def claim(
        cls,
        schedule_id: int,
        scheduled_for: datetime,
        reason: str,
        *,
        owner: Owner,
    ) -> Run | None:
        """Take the fire time ``scheduled_for`` of a schedule, or return None if it is taken.

        The unique constraint on (schedule, scheduled_for) makes this exactly-once across
        daemons; the schedule row lock (an IMMEDIATE transaction on SQLite) makes the
        overlap check and the insert one step, so two daemons cannot both start a run of
        a ``skip`` schedule. A fire time met while a run is still going is recorded as
        ``skipped`` so the history explains the gap.
        """
        now = dj_timezone.now()
        with transaction.atomic():
            schedule, busy = _lock_schedule(schedule_id, queued_too=True)
            if schedule is None or not schedule.enabled:
                return None
            run = cls.taken(schedule, reason, scheduled_for, now, owner=owner, busy=busy)
            try:
                with transaction.atomic():
                    run.save(force_insert=True)
            except IntegrityError:
                return None
        return run

    @classmethod
    def snapshot(
        cls, schedule: Schedule, reason: str, scheduled_for: datetime, now: datetime
    ) -> Run:
        """An unsaved run carrying the schedule's command as it is now (history keeps it)."""
        return cls(
            schedule=schedule,
            command=schedule.command,
            args=schedule.args,
            reason=reason,
            scheduled_for=scheduled_for,
            created_at=now,
            executor=schedule.effective_executor(),
            timeout=schedule.timeout,
            jitter=schedule.jitter,
        )

    @classmethod
    def taken(
        cls,
        schedule: Schedule,
        reason: str,
        scheduled_for: datetime,
        now: datetime,
        *,
        owner: Owner,
        busy: bool,
        here: bool = False,
    ) -> Run:
        """An unsaved run taken by ``owner``: running, or skipped if the schedule is busy.

        A run for the ``tasks`` executor is ``queued`` instead, owned by nobody until a
        worker starts it (``start_queued``), unless it is to run ``here``, in a child
        process of the owner (the command line's run).
        """
        run = cls.snapshot(schedule, reason, scheduled_for, now)
        if here and run.executor == Executor.TASKS:
            run.executor = Executor.PROCESS
        if busy:
            run.status, run.finished_at, run.stderr = Status.SKIPPED, now, SKIPPED_MESSAGE
        elif run.executor == Executor.TASKS:
            run.status = Status.QUEUED
            return run
        else:
            run.status, run.started_at = Status.RUNNING, now
        run.host, run.pid, run.heartbeat_id = owner.host, owner.pid, owner.heartbeat_id
        return run

    @classmethod
    def enqueue_manual(cls, schedule: Schedule) -> Run:
        """Ask a running daemon to run ``schedule`` now; the web request does not run it."""
        now = dj_timezone.now()
        run = cls.snapshot(schedule, Reason.MANUAL, now, now)
        run.status = Status.QUEUED
        run.save(force_insert=True)
        return run

    @classmethod
    def start_manual(cls, schedule: Schedule, *, owner: Owner) -> Run:
        """A manual run taken by ``owner`` at once (the command line's "run now").

        Never ``queued``, so no daemon can pick it up as well; a ``tasks`` schedule runs
        here too, its output on the terminal.
        """
        now = dj_timezone.now()
        with transaction.atomic():
            _, busy = _lock_schedule(schedule.pk)
            run = cls.taken(schedule, Reason.MANUAL, now, now, owner=owner, busy=busy, here=True)
            run.save(force_insert=True)
        return run

    def start_queued(self, *, owner: Owner) -> bool:
        """Move a queued run to running (or skipped, by the overlap rule).

        Returns False if another process took it first: the conditional update is what
        makes a queued run start once however many daemons see it.
        """
        with transaction.atomic():
            busy = False
            if self.schedule_id is not None:
                _, busy = _lock_schedule(self.schedule_id)
                if self.waits(busy):
                    return False
            # Read under the lock: a run started after another ended starts after its end.
            now = dj_timezone.now()
            changes = owner.fields()
            if busy:
                changes.update(
                    status=Status.SKIPPED,
                    finished_at=now,
                    stderr=SKIPPED_MESSAGE,
                )
            else:
                changes.update(status=Status.RUNNING, started_at=now)
            taken = Run.objects.filter(pk=self.pk, status=Status.QUEUED).update(**changes)
        if taken:
            for field, value in changes.items():
                setattr(self, field, value)
        return bool(taken)

    def waits(self, busy: bool) -> bool:
        """Should this queued retry or backfill run stay queued for now?

        It waits, instead of being skipped, while its schedule is busy, and a backfill
        run also while ``BACKFILL_CONCURRENCY`` backfill runs of its schedule are going.
        Must run under the schedule's lock (``_lock_schedule``).
        """
        if self.reason not in (Reason.RETRY, Reason.BACKFILL) or self.executor == Executor.TASKS:
            return False
        if busy:
            return True
        if self.reason != Reason.BACKFILL:
            return False
        going = Run.objects.filter(
            schedule_id=self.schedule_id, reason=Reason.BACKFILL, status=Status.RUNNING
        )
        return going.count() >= conf.BACKFILL_CONCURRENCY

    def take_hand_over(self, *, retry_before: datetime | None = None) -> bool:
        """Take the right to enqueue this queued run on the task backend; True only once.

        The daemon that claimed a fire time normally does it straight away; any daemon
        polling for queued runs may do it instead (admin's "run now", a daemon that died
        between claim and enqueue). A hand-over taken before ``retry_before`` that never
        got its task id (the daemon died during the enqueue) may be taken again: a task
        enqueued twice still starts the run once.
        """
        now = dj_timezone.now()
        taken = Run.objects.filter(
            Run.open_hand_over(retry_before), pk=self.pk, status=Status.QUEUED
        ).update(enqueued_at=now)
        if taken:
            self.enqueued_at = now
        return bool(taken)

    @staticmethod
    def open_hand_over(retry_before: datetime | None) -> Q:
        """Queued runs a daemon may (still) hand over: see ``take_hand_over``."""
        condition = Q(enqueued_at__isnull=True)
        if retry_before is not None:
            condition |= Q(executor=Executor.TASKS, task_id="", enqueued_at__lt=retry_before)
        return condition

    @classmethod
    def awaiting_worker(cls, enqueued_before: datetime) -> models.QuerySet[Run]:
        """Runs handed to the task backend before ``enqueued_before`` and not started yet."""
        return cls.objects.filter(
            status=Status.QUEUED, executor=Executor.TASKS, enqueued_at__lt=enqueued_before
        ).exclude(task_id="")

    def set_task_id(self, task_id: str) -> None:
        self.task_id = task_id
        Run.objects.filter(pk=self.pk).update(task_id=task_id)

    def mark_started(self) -> bool:
        """Record the real start (after jitter), separate from the claim.

        Only a run still ``running`` is changed; False if another process ended it.
        """
        now = dj_timezone.now()
        if not Run.objects.filter(pk=self.pk, status=Status.RUNNING).update(started_at=now):
            return False
        self.started_at = now
        return True

    def finish(self, result: ExecutionResult) -> bool:
        """Record the command's result; False if another process had ended the run.

        That process's status (``interrupted`` by a daemon that took this one for dead)
        stays, and this object is reloaded to show it: the run was ended, and notified
        about, once.
        """
        now = dj_timezone.now()
        ended = Run.objects.filter(pk=self.pk, status=Status.RUNNING).update(
            status=result.status,
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            finished_at=now,
        )
        if not ended:
            self.refresh_from_db()
            return False
        self.status, self.exit_code, self.finished_at = result.status, result.exit_code, now
        self.stdout, self.stderr = result.stdout, result.stderr
        return True

    def still_owned(self) -> bool:
        """Is this run still ``running`` under the owner that took it (no one ended it)?"""
        return Run.objects.filter(
            pk=self.pk, status=Status.RUNNING, heartbeat_id=self.heartbeat_id
        ).exists()

    def release(self) -> bool:
        """Give back a run taken but never started (its jitter delay was cut short).

        A fire time's run is deleted, so the fire time is unclaimed again and catch-up
        runs it at the next start; a queued manual, retry or backfill run goes back to
        ``queued``. Only a
        run still ``running`` under its owner is released; returns whether this call did.
        """
        mine = Run.objects.filter(pk=self.pk, status=Status.RUNNING, heartbeat_id=self.heartbeat_id)
        if self.reason in QUEUED_REASONS:
            return bool(
                mine.update(
                    status=Status.QUEUED, started_at=None, host="", pid=None, heartbeat=None
                )
            )
        return bool(mine.delete()[0])

    @classmethod
    def interrupt_orphans(cls, heartbeat_ids: list[int], *, message: str) -> list[Run]:
        """End the ``running`` runs of daemons (or workers) known to be gone as ``interrupted``."""
        if not heartbeat_ids:
            return []
        orphans = cls.objects.filter(heartbeat_id__in=heartbeat_ids, status=Status.RUNNING)
        return cls._interrupt(list(orphans.values_list("pk", flat=True)), message)

    @classmethod
    def interrupt_overdue(
        cls, now: datetime, *, max_age: timedelta, grace: timedelta, message: str
    ) -> list[Run]:
        """End ``tasks`` runs still ``running`` long after they must have ended.

        That is past the timeout the run was taken with (``max_age`` without one) plus its
        jitter and ``grace``: the worker stops a command at that limit itself, so only a
        worker that is lost or stuck overruns it. The backstop for workers no heartbeat
        rule caught. A schedule edited since does not change a run already going.
        """
        running = cls.objects.filter(
            status=Status.RUNNING, executor=Executor.TASKS, started_at__isnull=False
        ).values_list("pk", "started_at", "timeout", "jitter")
        overdue = [
            pk
            for pk, started_at, timeout, jitter in running
            if now - started_at
            > (timedelta(seconds=timeout) if timeout else max_age)
            + timedelta(seconds=jitter or 0)
            + grace
        ]
        return cls._interrupt(overdue, message)

    @classmethod
    def interrupt(cls, run_ids: list[int], *, message: str) -> list[Run]:
        """End these runs as ``interrupted`` if still ``running``; returns those this call ended."""
        return cls._interrupt(run_ids, message)

    @classmethod
    def _interrupt(cls, run_ids: list[int], message: str) -> list[Run]:
        """Returns the runs this call ended (not those another process ended meanwhile)."""
        ended = []
        for run_id in run_ids:
            if cls.objects.filter(pk=run_id, status=Status.RUNNING).update(
                status=Status.INTERRUPTED,
                finished_at=dj_timezone.now(),
                stderr=Concat("stderr", Value(f"\n[scheduler] {message}\n")),
            ):
                ended.append(run_id)
        return list(cls.objects.select_related("schedule").filter(pk__in=ended))

    def claim_notification(self) -> bool:
        """Take the right to notify about this run; True only once, across processes."""
        now = dj_timezone.now()
        taken = Run.objects.filter(pk=self.pk, notified_at__isnull=True).update(notified_at=now)
        if taken:
            self.notified_at = now
        return bool(taken)

    def save_output(self, stdout: str, stderr: str) -> None:
        """Store the output so far of a run still going, for admin's live view."""
        self.stdout, self.stderr = stdout, stderr
        Run.objects.filter(pk=self.pk, status=Status.RUNNING).update(stdout=stdout, stderr=stderr)

    def fail(self, message: str, *, status: str = Status.FAILED) -> bool:
        """End a run that could not execute its command, with the reason in ``stderr``.

        Only a run still ``running`` is changed; returns whether this call ended it.
        """
        return self._end_unstarted(Status.RUNNING, status, message)

    def refuse(self, message: str) -> bool:
        """Fail a ``queued`` run no worker will start (the backend refused or lost its task).

        A run a worker has started meanwhile is left to the worker; returns whether this
        call ended it.
        """
        return self._end_unstarted(Status.QUEUED, Status.FAILED, message)

    def _end_unstarted(self, current: str, status: str, message: str) -> bool:
        now = dj_timezone.now()
        ended = Run.objects.filter(pk=self.pk, status=current).update(
            status=status, stderr=message, finished_at=now
        )
        if ended:
            self.status, self.stderr, self.finished_at = status, message, now
        return bool(ended)


def _lock_schedule(schedule_id: int, *, queued_too: bool = False) -> tuple[Schedule | None, bool]:
    """Lock a schedule's row for the rest of the transaction; say if it must skip now.

    A new fire time (``queued_too``) also waits for a run queued for task workers: while
    they are down, a ``skip`` schedule keeps one run queued, not one per fire time.

    Must run inside ``transaction.atomic()``. On SQLite the IMMEDIATE transaction already
    holds the write lock, so the check and the write that follows are one step there too.
    """
    schedule = Schedule.objects.select_for_update().filter(pk=schedule_id).first()
    pending = Q(status=Status.RUNNING)
    if queued_too:
        # A retry waiting for its run_after does not hold the schedule up.
        pending |= Q(status=Status.QUEUED, executor=Executor.TASKS) & ~Q(run_after__gt=Now())
    busy = (
        schedule is not None
        and schedule.overlap == Overlap.SKIP
        and Run.objects.filter(pending, schedule=schedule).exists()
    )
    return schedule, busy
