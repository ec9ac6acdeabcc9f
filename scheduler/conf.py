"""One accessor for the ``SCHEDULER`` settings dict, with the documented defaults.

Every key is read on access, so ``override_settings`` in tests and settings changed at
start-up are seen without a restart of the import machinery; ``checks.py`` validates the
values so a typo surfaces in ``manage.py check`` rather than at 03:00.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # None: the commands of the project's own apps (not third-party ones) and Django's
    # harmless housekeeping built-ins (commands.HOUSEKEEPING).
    "ALLOWED_COMMANDS": None,
    # Command names admitted on top of ALLOWED_COMMANDS (or of the default, when None).
    "EXTRA_ALLOWED_COMMANDS": [],
    "EXECUTOR": "process",
    "OUTPUT_LIMIT": 1024 * 1024,
    "POLL_INTERVAL": 1.0,
    "RESYNC_INTERVAL": 60.0,
    "MAX_CONCURRENT_RUNS": 32,
    "KILL_GRACE": 5.0,
    "SHUTDOWN_GRACE": 30.0,
    "HEARTBEAT_INTERVAL": 5.0,
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
    # Backfill runs of one schedule a daemon runs at the same time, oldest first.
    "BACKFILL_CONCURRENCY": 1,
}

EXECUTORS = ("process", "thread", "tasks")


class SchedulerSettings:
    """Attribute access to ``settings.SCHEDULER`` falling back to ``DEFAULTS``."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(name)
        return self.raw().get(name, DEFAULTS[name])

    @staticmethod
    def raw() -> dict[str, Any]:
        value = getattr(settings, "SCHEDULER", None)
        return value if isinstance(value, dict) else {}


conf = SchedulerSettings()
