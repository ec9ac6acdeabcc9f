"""Which management commands may be scheduled, and whether given argv parses for them.

Whoever can edit a ``Schedule`` can run its command with the daemon's privileges, so the
default admits only the project's own commands; Django's destructive or interactive
built-ins are never admitted unless named in ``SCHEDULER["ALLOWED_COMMANDS"]``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management import get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError
from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import conf

# Never admitted by the default; an explicit ALLOWED_COMMANDS entry is the only way in.
DANGEROUS = frozenset(
    {
        "changepassword",
        "createsuperuser",
        "dbshell",
        "flush",
        "loaddata",
        "migrate",
        "runscheduler",
        "runserver",
        "shell",
        "sqlflush",
        "squashmigrations",
        "testserver",
        "test",
    }
)


class CommandNotAllowed(Exception):
    """The command does not exist or is not admitted by ``ALLOWED_COMMANDS``."""


def allowed_commands() -> frozenset[str]:
    """The command names that may be scheduled from the database."""
    explicit = conf.ALLOWED_COMMANDS
    available = get_commands()
    if explicit is not None:
        return frozenset(name for name in explicit if name in available)
    return _project_commands()


@functools.cache
def _project_commands() -> frozenset[str]:
    """The default: checked before every run, so worked out once per process."""
    available = get_commands()
    base = Path(getattr(settings, "BASE_DIR", Path.cwd())).resolve()
    project_apps = set()
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if (
            path.is_relative_to(base)
            and "site-packages" not in path.parts
            and config.label != "scheduler"
        ):
            project_apps.add(config.name)
    return frozenset(
        name for name, app in available.items() if app in project_apps and name not in DANGEROUS
    )


def check_allowed(name: str) -> None:
    """Raise :class:`CommandNotAllowed` with a message fit for an operator."""
    if name not in get_commands():
        raise CommandNotAllowed(f"Unknown management command {name!r}.")
    if name not in allowed_commands():
        raise CommandNotAllowed(
            f"Command {name!r} is not allowed to be scheduled; add it to "
            f'SCHEDULER["ALLOWED_COMMANDS"] to allow it.'
        )


def load_command(name: str) -> BaseCommand:
    app = get_commands()[name]
    if isinstance(app, BaseCommand):
        return app
    return load_command_class(app, name)


def check_arguments(name: str, args: list[str]) -> None:
    """Run the command's own argument parser over ``args``; raise ``CommandError`` if it refuses.

    A command's parser raises ``CommandError`` (not ``SystemExit``) when not called from
    the command line, which is what lets an option typo be refused when it is saved.
    """
    command = load_command(name)
    parser = command.create_parser("manage.py", name)
    try:
        parser.parse_args(args)
    except SystemExit as exc:  # --help and --version print and exit even off the command line
        raise CommandError(f"{' '.join(args)!r} makes the command exit instead of run.") from exc


@receiver(setting_changed)
def _forget_project_commands(*, setting: str, **kwargs) -> None:
    if setting in ("INSTALLED_APPS", "BASE_DIR", "SCHEDULER"):
        _project_commands.cache_clear()
