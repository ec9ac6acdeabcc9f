"""System checks for ``settings.SCHEDULER``: misconfiguration shows in ``manage.py check``."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ValidationError
from django.core.management import get_commands

from .conf import DEFAULTS, EXECUTORS, conf
from .declared import declared_schedule
from .task_backend import tasks_backend_problem

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
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    raw = getattr(settings, "SCHEDULER", {})
    if not isinstance(raw, dict):
        return [
            Error("SCHEDULER must be a dict.", id="scheduler.E001", obj="SCHEDULER"),
        ]
    errors: list[CheckMessage] = []
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
        errors += _command_names("ALLOWED_COMMANDS", allowed, "scheduler.E002", "scheduler.W002")
    errors += _command_names(
        "EXTRA_ALLOWED_COMMANDS", conf.EXTRA_ALLOWED_COMMANDS, "scheduler.E012", "scheduler.W004"
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
    token = conf.METRICS_TOKEN
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        errors.append(
            Error(
                'SCHEDULER["METRICS_TOKEN"] must be a string of at least 16 characters, or None.',
                hint="For example: python -c 'import secrets; print(secrets.token_urlsafe())'",
                id="scheduler.E013",
            )
        )
    return errors


def _check_tasks_backend() -> list[CheckMessage]:
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


def _check_declared(declared: object) -> list[CheckMessage]:
    if not isinstance(declared, dict):
        return [
            Error(
                'SCHEDULER["SCHEDULES"] must be a dict of schedule name to fields.',
                id="scheduler.E009",
            )
        ]
    errors: list[CheckMessage] = []
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


def _messages(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"schedule": exc.messages}


@register(Tags.compatibility)
def check_installed_apps(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Name the line to add when an app the scheduler needs is missing from INSTALLED_APPS."""
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
def check_sqlite(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Show the SQLite option the app cannot set for the project's own processes."""
    return sqlite_warnings(settings.DATABASES)


def sqlite_warnings(databases: dict[str, dict[str, Any]]) -> list[CheckMessage]:
    """A warning, with the line to paste, per SQLite database that begins DEFERRED."""
    warnings: list[CheckMessage] = []
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


def _command_names(key: str, names: object, error_id: str, warning_id: str) -> list[CheckMessage]:
    """Check that the setting ``key`` is a list of command names, each one that exists."""
    if not isinstance(names, list | tuple | set | frozenset) or not all(
        isinstance(name, str) for name in names
    ):
        none = ", or None" if key == "ALLOWED_COMMANDS" else ""
        return [Error(f'SCHEDULER["{key}"] must be a list of command names{none}.', id=error_id)]
    missing = sorted(set(names) - set(get_commands()))
    if not missing:
        return []
    return [
        Warning(
            f'SCHEDULER["{key}"] names unknown command(s): {", ".join(missing)}.', id=warning_id
        )
    ]
