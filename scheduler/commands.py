"""Which management commands may be scheduled, and whether given argv parses for them.

Whoever can edit a ``Schedule`` can run its command with the daemon's privileges, so the
default admits only the project's own commands (never an installed third-party package's,
wherever it lies) and a few harmless Django housekeeping built-ins; Django's destructive
or interactive built-ins are never admitted unless named in ``SCHEDULER["ALLOWED_COMMANDS"]``
or ``SCHEDULER["EXTRA_ALLOWED_COMMANDS"]``.
"""

from __future__ import annotations

import functools
import json
import threading
from argparse import ArgumentParser, _SubParsersAction
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.apps import AppConfig, apps
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


# Django built-ins admitted by the default: non-interactive, and unable to destroy data or
# reveal secrets whatever their arguments.
HOUSEKEEPING = frozenset(
    {
        # Deletes expired sessions only; Django's docs ask for it to be run from cron.
        "clearsessions",
        # Runs the system checks, read-only; exits non-zero on errors, so a run fails.
        "check",
    }
)

# Directories that hold another repository's checkout (a clone pip made of an editable
# VCS requirement, a submodule): what lies inside is not the project's own source.
_CHECKOUT_MARKERS = (".git", ".hg", ".svn", ".bzr")


_default_lock = threading.Lock()


class CommandNotAllowed(Exception):
    """The command does not exist or is not admitted by ``ALLOWED_COMMANDS``."""


def allowed_commands() -> frozenset[str]:
    """The command names that may be scheduled from the database."""
    explicit = conf.ALLOWED_COMMANDS
    available = get_commands()
    if explicit is None:
        with _default_lock:  # worked out once, not by every thread of a burst at once
            names = _default_commands()
    else:
        names = _names(explicit)
    return frozenset(
        name for name in names | _names(conf.EXTRA_ALLOWED_COMMANDS) if name in available
    )


def _names(value: object) -> frozenset[str]:
    """The command names in a setting; a malformed one (reported by a check) names none."""
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        return frozenset()
    return frozenset(name for name in value if isinstance(name, str))


@functools.cache
def _default_commands() -> frozenset[str]:
    """The default: checked before every run, so worked out once per process."""
    available = get_commands()
    base = Path(getattr(settings, "BASE_DIR", Path.cwd())).resolve()
    providers = metadata.packages_distributions()
    project_apps = {
        config.name
        for config in apps.get_app_configs()
        if config.label != "scheduler" and _is_project_app(config, base, providers)
    }
    project = {name for name, app in available.items() if app in project_apps}
    housekeeping = {
        name
        for name in HOUSEKEEPING
        if available.get(name) == "django.core"
        or str(available.get(name)).startswith("django.contrib.")
    }
    return frozenset((project | housekeeping) - DANGEROUS)


def _is_project_app(config: AppConfig, base: Path, providers: Mapping[str, list[str]]) -> bool:
    """Whether the app is the project's own source rather than installed code.

    It must lie inside ``BASE_DIR`` (and there not in a virtualenv, a site- or dist-packages
    directory or another repository's checkout), and its top-level package must belong to
    no installed distribution but the project's own editable install.
    """
    if not _is_project_dir(Path(config.path).resolve(), base):
        return False
    package = config.name.partition(".")[0]
    return not any(
        _is_installed(dist) and not _is_project_install(dist, base)
        for name in set(providers.get(package, ()))
        for dist in metadata.distributions(name=name)
    )


def _is_project_dir(path: Path, base: Path) -> bool:
    """Whether ``path`` is inside ``base`` with no directory on the way marking installed code."""
    if not path.is_relative_to(base):
        return False
    for directory in (path, *path.parents):
        if directory == base:
            return True
        if (
            directory.name in ("site-packages", "dist-packages")
            or (directory / "pyvenv.cfg").exists()
            or any((directory / marker).exists() for marker in _CHECKOUT_MARKERS)
        ):
            return False
    return True


def _is_installed(dist: metadata.Distribution) -> bool:
    """Whether an installer put ``dist`` there, as opposed to metadata left by a build."""
    return any(
        dist.read_text(record) is not None
        for record in ("RECORD", "installed-files.txt", "direct_url.json")
    )


def _is_project_install(dist: metadata.Distribution, base: Path) -> bool:
    """Whether ``dist`` is the project installed in development mode from its own folder."""
    try:
        origin = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        return False
    if not isinstance(origin, dict) or "vcs_info" in origin:
        return False
    url = urlsplit(str(origin.get("url", "")))
    dir_info = origin.get("dir_info")
    if (
        url.scheme != "file"
        or not isinstance(dir_info, dict)
        or dir_info.get("editable") is not True
    ):
        return False
    source = Path(unquote(url.path)).resolve()
    return base.is_relative_to(source) or _is_project_dir(source, base)


def check_allowed(name: str) -> None:
    """Raise :class:`CommandNotAllowed` with a message fit for an operator."""
    if name not in get_commands():
        raise CommandNotAllowed(f"Unknown management command {name!r}.")
    if name not in allowed_commands():
        raise CommandNotAllowed(
            f"Command {name!r} is not allowed to be scheduled; add it to "
            f'SCHEDULER["EXTRA_ALLOWED_COMMANDS"] to allow it.'
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
    Unrecognized arguments are named before anything else (a misspelt required option
    would otherwise be reported as missing), and nothing the parser would print (help,
    version) reaches the terminal.
    """
    command = load_command(name)
    lenient = _quiet(command.create_parser("manage.py", name))
    _relax(lenient)
    try:
        _, extra = lenient.parse_known_args(args)
        if extra:
            raise CommandError(f"Error: unrecognized arguments: {' '.join(extra)}")
        _quiet(command.create_parser("manage.py", name)).parse_args(args)
    except SystemExit as exc:  # --help and --version exit even off the command line
        raise CommandError(f"{' '.join(args)!r} makes the command exit instead of run.") from exc


def _parsers(parser: ArgumentParser) -> Iterator[ArgumentParser]:
    """The parser and its subcommands' parsers."""
    yield parser
    for action in parser._actions:
        if isinstance(action, _SubParsersAction):
            for subparser in action.choices.values():
                yield from _parsers(subparser)


def _quiet(parser: ArgumentParser) -> ArgumentParser:
    """Make the parser print nothing; per parser, unlike swapping ``sys.stdout``, which
    would swallow the output of commands running in other threads meanwhile."""
    for each in _parsers(parser):
        # Shadows the method on this instance only, which mypy cannot tell from the class.
        each._print_message = lambda message, file=None: None  # type: ignore[method-assign]
    return parser


def _relax(parser: ArgumentParser) -> None:
    """Make every argument optional, so that parsing finds unrecognized ones first."""
    for each in _parsers(parser):
        for action in each._actions:
            action.required = False
        for group in each._mutually_exclusive_groups:
            group.required = False


@receiver(setting_changed)
def _forget_project_commands(*, setting: str, **kwargs: Any) -> None:
    if setting in ("INSTALLED_APPS", "BASE_DIR", "SCHEDULER"):
        _default_commands.cache_clear()
