"""System checks for ``settings.SCHEDULER``: misconfiguration shows in ``manage.py check``."""

from __future__ import annotations

from numbers import Real

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.management import get_commands

from .conf import DEFAULTS, EXECUTORS, conf

_POSITIVE_NUMBERS = (
    "POLL_INTERVAL",
    "RESYNC_INTERVAL",
    "KILL_GRACE",
    "SHUTDOWN_GRACE",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TIMEOUT",
    "TASKS_MAX_AGE",
)


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    raw = getattr(settings, "SCHEDULER", {})
    if not isinstance(raw, dict):
        return [
            Error("SCHEDULER must be a dict.", id="scheduler.E001", obj="SCHEDULER"),
        ]
    errors: list = []
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        errors.append(
            Warning(
                f"Unknown SCHEDULER key(s): {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="scheduler.W001",
            )
        )
    allowed = conf.ALLOWED_COMMANDS
    if allowed is not None:
        if isinstance(allowed, str) or not all(isinstance(name, str) for name in allowed):
            errors.append(
                Error(
                    'SCHEDULER["ALLOWED_COMMANDS"] must be a list of command names, or None.',
                    id="scheduler.E002",
                )
            )
        else:
            missing = sorted(set(allowed) - set(get_commands()))
            if missing:
                errors.append(
                    Warning(
                        f'SCHEDULER["ALLOWED_COMMANDS"] names unknown command(s): '
                        f"{', '.join(missing)}.",
                        id="scheduler.W002",
                    )
                )
    extra = conf.EXTRA_ALLOWED_COMMANDS
    if not isinstance(extra, list | tuple) or not all(isinstance(name, str) for name in extra):
        errors.append(
            Error(
                'SCHEDULER["EXTRA_ALLOWED_COMMANDS"] must be a list of command names.',
                id="scheduler.E012",
            )
        )
    else:
        missing = sorted(set(extra) - set(get_commands()))
        if missing:
            errors.append(
                Warning(
                    f'SCHEDULER["EXTRA_ALLOWED_COMMANDS"] names unknown command(s): '
                    f"{', '.join(missing)}.",
                    id="scheduler.W004",
                )
            )
    if conf.EXECUTOR not in EXECUTORS:
        errors.append(
            Error(
                f'SCHEDULER["EXECUTOR"] must be one of {", ".join(EXECUTORS)}; '
                f"got {conf.EXECUTOR!r}.",
                id="scheduler.E003",
            )
        )
    limit = conf.OUTPUT_LIMIT
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1024:
        errors.append(
            Error(
                'SCHEDULER["OUTPUT_LIMIT"] must be a whole number of bytes, at least 1024.',
                id="scheduler.E004",
            )
        )
    for key in _POSITIVE_NUMBERS:
        value = getattr(conf, key)
        if not isinstance(value, Real) or isinstance(value, bool) or value <= 0:
            errors.append(
                Error(
                    f'SCHEDULER["{key}"] must be a positive number of seconds.', id="scheduler.E005"
                )
            )
    beat, timeout = conf.HEARTBEAT_INTERVAL, conf.HEARTBEAT_TIMEOUT
    if all(isinstance(v, Real) and not isinstance(v, bool) for v in (beat, timeout)) and (
        timeout < 2 * beat
    ):
        errors.append(
            Error(
                'SCHEDULER["HEARTBEAT_TIMEOUT"] must be at least twice HEARTBEAT_INTERVAL, '
                "or live daemons are taken for dead.",
                id="scheduler.E007",
            )
        )
    memory = conf.MEMORY_LIMIT
    if memory is not None and (
        not isinstance(memory, int) or isinstance(memory, bool) or memory < 64 * 1024 * 1024
    ):
        errors.append(
            Error(
                'SCHEDULER["MEMORY_LIMIT"] must be None or a number of bytes, at least 64 MiB.',
                id="scheduler.E008",
            )
        )
    if conf.EXECUTOR == "tasks":
        errors.extend(_check_tasks_backend())
    errors.extend(_check_declared(conf.SCHEDULES))
    for key in ("KEEP_RUNS", "KEEP_DAYS"):
        value = getattr(conf, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            errors.append(
                Error(
                    f'SCHEDULER["{key}"] must be a whole number, at least 0.', id="scheduler.E010"
                )
            )
    for key in ("MAX_CONCURRENT_RUNS", "BACKFILL_CONCURRENCY"):
        workers = getattr(conf, key)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            errors.append(
                Error(
                    f'SCHEDULER["{key}"] must be a whole number, at least 1.', id="scheduler.E006"
                )
            )
    return errors


def tasks_backend_problem() -> str | None:
    """Why runs cannot be handed to ``SCHEDULER["TASKS_BACKEND"]``, or None if they can.

    Asked by the system check when ``tasks`` is the default executor, and by a schedule's
    validation when it picks ``tasks``, so a wrong alias or queue, or a backend without
    workers, is refused where it is entered rather than found at the first fire time.
    """
    try:
        from .compat import DummyBackend, ImmediateBackend, task, task_backends
    except ImportError:
        return "The tasks executor needs the django-tasks package (pip install django-tasks)."
    if not hasattr(settings, "TASKS"):
        return (
            "The tasks executor needs a task backend with workers, and settings.TASKS is "
            "not set: its default, the Immediate backend, would run commands inside the "
            "scheduler."
        )
    alias, queue = conf.TASKS_BACKEND, conf.TASKS_QUEUE
    try:
        task(backend=alias, queue_name=queue)(_probe_task)
    except Exception as exc:
        return (
            f'SCHEDULER["TASKS_BACKEND"] {alias!r} with TASKS_QUEUE {queue!r} cannot take '
            f"runs: {exc}"
        )
    backend = task_backends[alias]
    if isinstance(backend, ImmediateBackend | DummyBackend):
        return (
            f'SCHEDULER["TASKS_BACKEND"] {alias!r} is {type(backend).__name__}, which hands '
            "runs to no worker (Immediate runs them inside the scheduler, Dummy never)."
        )
    return None


def _probe_task() -> None:
    """A module-level function to validate a backend with (a task's function must be one)."""


def _check_tasks_backend() -> list:
    problem = tasks_backend_problem()
    if problem:
        return [
            Error(
                problem,
                hint="Configure a backend with workers in settings.TASKS, such as "
                "django_tasks_db.DatabaseBackend.",
                id="scheduler.E011",
            )
        ]
    return []


def _check_declared(declared) -> list:
    from django.core.exceptions import ValidationError

    from .declared import declared_schedule

    if not isinstance(declared, dict):
        return [
            Error(
                'SCHEDULER["SCHEDULES"] must be a dict of schedule name to fields.',
                id="scheduler.E009",
            )
        ]
    errors = []
    for name, fields in declared.items():
        if not isinstance(fields, dict):
            errors.append(
                Error(f"Schedule {name!r} must be a dict of fields.", id="scheduler.E009")
            )
            continue
        try:
            declared_schedule(str(name), fields, None)
        except ValidationError as exc:
            details = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in _messages(exc).items()
            )
            errors.append(
                Error(
                    f'SCHEDULER["SCHEDULES"][{name!r}] is invalid: {details}',
                    id="scheduler.E009",
                )
            )
    return errors


def _messages(exc) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"schedule": exc.messages}


@register(Tags.compatibility)
def check_installed_apps(app_configs=None, **kwargs) -> list:
    """Name the line to add when an app the scheduler needs is missing from INSTALLED_APPS."""
    from django.apps import apps

    if apps.is_installed("django_apscheduler"):
        return []
    return [
        Error(
            "The scheduler keeps its job store in django_apscheduler, which is not in "
            "INSTALLED_APPS.",
            hint='Add this line to INSTALLED_APPS, next to "scheduler": "django_apscheduler",',
            id="scheduler.E020",
        )
    ]


@register(Tags.compatibility)
def check_sqlite(app_configs=None, **kwargs) -> list:
    """Show the SQLite option the app cannot set for the project's own processes."""
    return sqlite_warnings(settings.DATABASES)


def sqlite_warnings(databases: dict) -> list:
    """A warning, with the line to paste, per SQLite database that begins DEFERRED."""
    warnings = []
    for alias, database in databases.items():
        if database.get("ENGINE") != "django.db.backends.sqlite3":
            continue
        options = database.get("OPTIONS") or {}
        if str(options.get("transaction_mode") or "").upper() in ("IMMEDIATE", "EXCLUSIVE"):
            continue
        line = (
            f'DATABASES["{alias}"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"'
            if options
            else f'DATABASES["{alias}"]["OPTIONS"] = {{"transaction_mode": "IMMEDIATE"}}'
        )
        warnings.append(
            Warning(
                f"SQLite database {alias!r} begins transactions DEFERRED: a write that "
                "reads first (an admin form, your own atomic blocks) fails at once, instead "
                "of waiting, when a scheduler daemon writes at the same moment.",
                hint=f"Add this line to your settings, after DATABASES: {line}",
                id="scheduler.W010",
            )
        )
    return warnings
