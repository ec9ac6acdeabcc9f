"""One typed accessor for the ``SCHEDULER`` settings dict; the defaults are documented here.

Every key is read on access, so ``override_settings`` in tests and settings changed at
start-up are seen without a restart of the import machinery; ``checks.py`` validates the
values so a typo surfaces in ``manage.py check`` rather than at 03:00.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # None: the commands of the project's own apps (not third-party ones) and Django's
    # harmless housekeeping built-ins (commands.HOUSEKEEPING).
    "ALLOWED_COMMANDS": None,
    # Command names admitted on top of ALLOWED_COMMANDS (or of the default, when None).
    "EXTRA_ALLOWED_COMMANDS": [],
    "EXECUTOR": "process",
    "OUTPUT_LIMIT": 1024 * 1024,
    # Seconds between change probes on SQLite (PostgreSQL notifies at once; other
    # databases re-read the schedules' fingerprint this often).
    "POLL_INTERVAL": 1.0,
    # Seconds between full re-reads of the schedules, on databases without notifications,
    # for edits that keep updated_at; only while something changes at all.
    "RESYNC_INTERVAL": 60.0,
    "MAX_CONCURRENT_RUNS": 32,
    "KILL_GRACE": 5.0,
    "SHUTDOWN_GRACE": 30.0,
    "HEARTBEAT_INTERVAL": 10.0,
    # A daemon silent for this long is taken for dead and its running runs interrupted.
    "HEARTBEAT_TIMEOUT": 30.0,
    # Bytes of address space a process-executor run may use (RLIMIT_AS); None: no limit.
    "MEMORY_LIMIT": None,
    # How often a running run's output so far is stored, for admin's live view.
    "OUTPUT_FLUSH_INTERVAL": 2.0,
    "PING_TIMEOUT": 5.0,
    # History kept per schedule (a schedule's keep_runs/keep_days override them).
    "KEEP_RUNS": 1000,
    "KEEP_DAYS": 90,
    "PRUNE_INTERVAL": 60.0,
    # Schedules declared in code: {"name": {"command": …, "cron": …, …}}.
    "SCHEDULES": {},
    # The "tasks" executor: which backend of settings.TASKS carries runs, on which queue.
    "TASKS_BACKEND": "default",
    "TASKS_QUEUE": "default",
    # A "tasks" run with no timeout still running after this many seconds is taken for
    # lost (its worker gone unnoticed) and ended as interrupted.
    "TASKS_MAX_AGE": 24 * 3600,
    # A bearer token that lets a scraper read /scheduler/metrics without a staff login;
    # None: staff login only.
    "METRICS_TOKEN": None,
    # Backfill runs of one schedule a daemon runs at the same time, oldest first.
    "BACKFILL_CONCURRENCY": 1,
}

EXECUTORS = ("process", "thread", "tasks")


class SchedulerSettings:
    """Typed access to ``settings.SCHEDULER``, falling back to ``DEFAULTS``.

    Each property reads the settings when asked, so ``override_settings`` applies at
    once. The types are the documented ones; ``checks.py`` reports values that are not.
    """

    def get(self, key: str) -> Any:
        """Return the value of ``key``, or its default; ``KeyError`` for an unknown key."""
        if key not in DEFAULTS:
            raise KeyError(key)
        return self.raw().get(key, DEFAULTS[key])

    @staticmethod
    def raw() -> dict[str, Any]:
        """Return ``settings.SCHEDULER`` as set; an empty dict if unset or not a dict."""
        value = getattr(settings, "SCHEDULER", None)
        return value if isinstance(value, dict) else {}

    @property
    def ALLOWED_COMMANDS(self) -> Sequence[str] | None:
        """Command names that may be scheduled; None: the project's own and housekeeping."""
        return cast("Sequence[str] | None", self.get("ALLOWED_COMMANDS"))

    @property
    def EXTRA_ALLOWED_COMMANDS(self) -> Sequence[str]:
        """Command names admitted on top of ``ALLOWED_COMMANDS``."""
        return cast("Sequence[str]", self.get("EXTRA_ALLOWED_COMMANDS"))

    @property
    def EXECUTOR(self) -> str:
        """Executor of a schedule that names none."""
        return cast("str", self.get("EXECUTOR"))

    @property
    def OUTPUT_LIMIT(self) -> int:
        """Characters of stdout and of stderr kept per run."""
        return cast("int", self.get("OUTPUT_LIMIT"))

    @property
    def POLL_INTERVAL(self) -> float:
        """Seconds between two looks at the schedule table."""
        return cast("float", self.get("POLL_INTERVAL"))

    @property
    def RESYNC_INTERVAL(self) -> float:
        """Seconds between two full re-reads of every schedule."""
        return cast("float", self.get("RESYNC_INTERVAL"))

    @property
    def MAX_CONCURRENT_RUNS(self) -> int:
        """Runs a daemon executes at once."""
        return cast("int", self.get("MAX_CONCURRENT_RUNS"))

    @property
    def KILL_GRACE(self) -> float:
        """Seconds between SIGTERM and SIGKILL of a stopped command."""
        return cast("float", self.get("KILL_GRACE"))

    @property
    def SHUTDOWN_GRACE(self) -> float:
        """Seconds a stopping daemon waits for its runs."""
        return cast("float", self.get("SHUTDOWN_GRACE"))

    @property
    def HEARTBEAT_INTERVAL(self) -> float:
        """Seconds between two beats of a run's owner."""
        return cast("float", self.get("HEARTBEAT_INTERVAL"))

    @property
    def HEARTBEAT_TIMEOUT(self) -> float:
        """Seconds of silence after which an owner is taken for dead."""
        return cast("float", self.get("HEARTBEAT_TIMEOUT"))

    @property
    def MEMORY_LIMIT(self) -> int | None:
        """Bytes of address space of a process-executor run; None: no limit."""
        return cast("int | None", self.get("MEMORY_LIMIT"))

    @property
    def OUTPUT_FLUSH_INTERVAL(self) -> float:
        """Seconds between two stores of a running run's output."""
        return cast("float", self.get("OUTPUT_FLUSH_INTERVAL"))

    @property
    def PING_TIMEOUT(self) -> float:
        """Seconds a monitor ping may take."""
        return cast("float", self.get("PING_TIMEOUT"))

    @property
    def KEEP_RUNS(self) -> int:
        """Runs kept per schedule (its ``keep_runs`` overrides it)."""
        return cast("int", self.get("KEEP_RUNS"))

    @property
    def KEEP_DAYS(self) -> int:
        """Days runs are kept (a schedule's ``keep_days`` overrides it)."""
        return cast("int", self.get("KEEP_DAYS"))

    @property
    def PRUNE_INTERVAL(self) -> float:
        """Seconds between two prunings of the history."""
        return cast("float", self.get("PRUNE_INTERVAL"))

    @property
    def SCHEDULES(self) -> dict[str, dict[str, Any]]:
        """Schedules declared in code."""
        return cast("dict[str, dict[str, Any]]", self.get("SCHEDULES"))

    @property
    def TASKS_BACKEND(self) -> str:
        """Alias in ``settings.TASKS`` of the backend that carries ``tasks`` runs."""
        return cast("str", self.get("TASKS_BACKEND"))

    @property
    def TASKS_QUEUE(self) -> str:
        """Queue of that backend."""
        return cast("str", self.get("TASKS_QUEUE"))

    @property
    def TASKS_MAX_AGE(self) -> float:
        """Seconds after which a ``tasks`` run with no timeout is taken for lost."""
        return cast("float", self.get("TASKS_MAX_AGE"))

    @property
    def METRICS_TOKEN(self) -> str | None:
        """Bearer token for ``/scheduler/metrics``; None: staff login only."""
        return cast("str | None", self.get("METRICS_TOKEN"))

    @property
    def BACKFILL_CONCURRENCY(self) -> int:
        """Backfill runs of one schedule a daemon runs at the same time, oldest first."""
        return cast("int", self.get("BACKFILL_CONCURRENCY"))


conf = SchedulerSettings()
