"""From a crontab to schedules: which lines run a management command, and as what.

:func:`parse_crontab` is a pure function of the file's text: it finds the lines that run
``manage.py COMMAND ARGS`` (or ``django-admin COMMAND``) through whatever shell wrapping
people write around it, and says for every other line why it cannot become a schedule.
:func:`review` then validates each proposal exactly as admin input is validated, and
:func:`apply` creates them, finding the ones an earlier import already made.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from .describe import describe_cron
from .history import changed_by, terminal_user
from .models import Schedule
from .timing import ALIASES, TimingError, expand_cron

_ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_USER = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_DURATION = re.compile(r"^(\d+(?:\.\d*)?)([smhd]?)$")
_URL = re.compile(r"^https?://\S+$")

SEPARATORS = frozenset({"&&", ";", "||", "&", "\n"})
REDIRECTIONS = frozenset({">", ">>", "<", ">&", "&>", "&>>", "<&", ">|", "<<", "<<<"})
# Variables whose value does not change what a management command does.
HARMLESS_VARIABLES = frozenset(
    {
        "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "PYTHONWARNINGS",
        "PYTHONUTF8", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TERM", "HOME", "USER",
        "LOGNAME", "PATH", "SHELL", "VIRTUAL_ENV",
    }
)  # fmt: skip
# A sixth field that is one of these is a command, so the file is a user crontab.
SHELL_WORDS = frozenset(
    {
        "cd", "source", ".", "python", "python3", "env", "nice", "ionice", "timeout", "flock",
        "sh", "bash", "test", "[", "exec", "run-one", "chronic", "sudo", "su", "uv", "poetry",
        "pipenv", "django-admin", "true", "curl", "wget", "export", "set", "umask", "cp",
        "rm", "find", "tar", "pg_dump", "mysqldump", "php", "node", "docker", "make",
    }
)  # fmt: skip
PREPARATION = frozenset({"cd", "source", ".", "export", "set", "umask", "true", ":", "exit"})
HARMLESS_AFTER = frozenset({"true", ":"})
OUTPUT_NOTE = "output redirection dropped: each run's output is recorded in its Run"


@dataclass
class Proposal:
    """A schedule the line would become, with what was dropped on the way."""

    line: int
    text: str
    name: str
    command: str
    args: list[str]
    cron: str
    timezone: str
    timeout: int | None = None
    ping_url: str = ""
    notes: list[str] = field(default_factory=list)

    def schedule(self) -> Schedule:
        """The unsaved schedule, as admin would create it."""
        return Schedule(
            name=self.name,
            command=self.command,
            args=list(self.args),
            cron=self.cron,
            timezone=self.timezone,
            timeout=self.timeout,
            ping_url=self.ping_url,
        )


@dataclass(frozen=True)
class Refusal:
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Note:
    line: int
    text: str
    note: str


@dataclass
class Crontab:
    """What a crontab file holds: proposed schedules, refused lines, file-wide notes."""

    system: bool
    proposals: list[Proposal] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


class Unconvertible(Exception):
    """The line cannot become a schedule; the message says why."""


def parse_crontab(
    text: str, *, timezone: str, settings_module: str | None, system: bool | None = None
) -> Crontab:
    """Read a user crontab (``system=False``) or an ``/etc/cron.d`` file with a user column.

    ``timezone`` applies until a ``CRON_TZ=``/``TZ=`` line; ``settings_module`` is the
    one the scheduler runs with: a line that runs with other settings is refused. With
    ``system=None`` the format is detected from the lines themselves.
    """
    lines = _logical_lines(text)
    if system is None:
        system = _looks_like_system_crontab(lines)
    result = Crontab(system=system)
    env: dict[str, str] = {}
    for number, line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assignment = _ENV_LINE.match(stripped)
        if assignment:
            name, value = assignment.group(1), _unquote(assignment.group(2).strip())
            env[name] = value
            note = _environment_line_note(name, value, settings_module)
            if note:
                result.notes.append(Note(number, stripped, note))
            continue
        try:
            proposal = _parse_job(number, stripped, env, timezone, settings_module, system)
        except Unconvertible as exc:
            result.refused.append(Refusal(number, stripped, str(exc)))
        else:
            result.proposals.append(proposal)
    _name_uniquely(result)
    return result


def _logical_lines(text: str) -> list[tuple[int, str]]:
    return list(enumerate(text.splitlines(), start=1))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _environment_line_note(name: str, value: str, settings_module: str | None) -> str:
    if name in ("CRON_TZ", "TZ"):
        return f"the lines below run in timezone {value}"
    if name == "MAILTO" and not value:
        return "cron mailed nothing; the scheduler mails ADMINS about failures (notify field)"
    if name == "MAILTO":
        return (
            "cron mailed each job's output; the scheduler records it in each Run and mails "
            "ADMINS about failures (the schedule's notify field)"
        )
    if name == "DJANGO_SETTINGS_MODULE":
        if value == settings_module:
            return "the scheduler runs with these settings too"
        return f"the lines below run with settings {value}, not {settings_module}: refused"
    if name in HARMLESS_VARIABLES:
        return f"{name} not needed: commands run inside the scheduler, not in a shell"
    return (
        f"{name} is not carried over: set it in the scheduler's environment if the commands need it"
    )


def _looks_like_system_crontab(lines: list[tuple[int, str]]) -> bool:
    """True when every job line has a user name between its timing and its command."""
    sixth_fields = []
    for _, line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _ENV_LINE.match(stripped):
            continue
        parts = stripped.split(None, 2 if stripped.startswith("@") else 6)
        index = 1 if stripped.startswith("@") else 5
        if len(parts) <= index + 1:
            return False
        sixth_fields.append(parts[index])
    return bool(sixth_fields) and all(
        _USER.match(word) and word not in SHELL_WORDS and "=" not in word for word in sixth_fields
    )


def _split_timing(line: str, system: bool) -> tuple[str, str | None, str]:
    """``(cron, user, command text)`` of a job line, or raise :class:`Unconvertible`."""
    if line.startswith("@"):
        parts = line.split(None, 1)
        alias = parts[0].lower()
        if alias == "@reboot":
            raise Unconvertible(
                "@reboot runs once when the machine boots; a schedule runs at fire times. "
                "Run it from the service that starts the site (systemd ExecStartPre=) instead"
            )
        if alias not in ALIASES:
            raise Unconvertible(
                f"unknown timing {parts[0]!r}; cron knows @reboot, " + ", ".join(ALIASES)
            )
        cron, rest = parts[0], parts[1] if len(parts) > 1 else ""
    else:
        parts = line.split(None, 5)
        if len(parts) < 6:
            raise Unconvertible("not a job line: five timing fields and a command expected")
        cron, rest = " ".join(parts[:5]), parts[5]
        try:
            expand_cron(cron)
        except TimingError as exc:
            raise Unconvertible(str(exc)) from None
    user = None
    if system:
        pieces = rest.split(None, 1)
        if len(pieces) < 2:
            raise Unconvertible("no command after the user column")
        user, rest = pieces
    if not rest.strip():
        raise Unconvertible("no command")
    return cron, user, rest


def _parse_job(
    number: int,
    line: str,
    env: dict[str, str],
    timezone: str,
    settings_module: str | None,
    system: bool,
) -> Proposal:
    cron, user, text = _split_timing(line, system)
    notes: list[str] = []
    if user is not None and user != "root":
        notes.append(f"ran as user {user}; the scheduler runs it as its own user")
    elif user == "root":
        notes.append("ran as root; the scheduler runs it as its own user")
    zone = env.get("CRON_TZ") or env.get("TZ") or timezone
    if env.get("DJANGO_SETTINGS_MODULE", settings_module) != settings_module:
        raise Unconvertible(_other_settings(env["DJANGO_SETTINGS_MODULE"], settings_module))
    job = _Job(settings_module=settings_module, notes=notes)
    job.read(_cron_command(text))
    return Proposal(
        line=number,
        text=line,
        name="",
        command=job.command,
        args=job.args,
        cron=cron,
        timezone=zone,
        timeout=job.timeout,
        ping_url=job.ping_url,
        notes=notes,
    )


def _cron_command(text: str) -> str:
    """The command cron hands the shell: ``\\%`` is a literal ``%``, a bare ``%`` is refused."""
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1 : index + 2] == "%":
            out.append("%")
            index += 2
            continue
        if char == "%":
            raise Unconvertible(
                "an unescaped % ends the command in cron and sends the rest to its standard "
                "input, which a scheduled command does not get (write \\% for a literal %)"
            )
        out.append(char)
        index += 1
    return "".join(out)


def _other_settings(wanted: str, current: str | None) -> str:
    return (
        f"runs with settings {wanted}, but the scheduler runs with {current}; import it "
        f"where DJANGO_SETTINGS_MODULE={wanted}, or schedule it there"
    )


@dataclass
class _Job:
    """The management command inside a shell command line, found step by step."""

    settings_module: str | None
    notes: list[str]
    command: str = ""
    args: list[str] = field(default_factory=list)
    timeout: int | None = None
    ping_url: str = ""

    def read(self, text: str) -> None:
        if "manage.py" not in text and "django-admin" not in text and "-m django" not in text:
            raise Unconvertible("not a Django management command (no manage.py or django-admin)")
        if "$(" in text or "`" in text:
            raise Unconvertible(
                "uses shell command substitution ($(…) or `…`), which a schedule's fixed "
                "arguments cannot do"
            )
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            tokens = list(lexer)
        except ValueError as exc:
            raise Unconvertible(f"cannot be split like a shell would: {exc}") from None
        steps, separators, output_notes = self._steps(tokens, text)
        found = [i for i, step in enumerate(steps) if self._is_django(step)]
        if not found:
            raise Unconvertible("not a Django management command (no manage.py or django-admin)")
        if len(found) > 1:
            raise Unconvertible(
                f"runs {len(found)} management commands one after another; make a schedule "
                f"for each, or one command that calls the others (like nightly_batch)"
            )
        index = found[0]
        for step in steps[:index]:
            self._preparation(step)
        for separator, step in zip(separators[index:], steps[index + 1 :], strict=True):
            self._afterwards(separator, step)
        self._invocation(steps[index])
        for note in output_notes:
            self._note(note)

    def _steps(self, tokens: list[str], text: str) -> tuple[list[list[str]], list[str], list[str]]:
        """Split at ``&&``, ``;``, ``||``; drop redirections and what output is piped to."""
        steps: list[list[str]] = [[]]
        separators: list[str] = []
        output_notes: list[str] = []
        piped = False
        redirected = False
        iterator = iter(range(len(tokens)))
        for i in iterator:
            token = tokens[i]
            if token in SEPARATORS:
                if token == "&":
                    raise Unconvertible("runs the command in the background (&)")
                separators.append(token)
                steps.append([])
                piped = False
                continue
            if token == "|":
                if not any(self._is_django(s) for s in steps):
                    raise Unconvertible(
                        "pipes into the command; a scheduled command gets no standard input"
                    )
                piped = True
                output_notes.append(
                    f"output piped to {tokens[i + 1] if i + 1 < len(tokens) else '…'} "
                    f"dropped: each run's output is recorded in its Run"
                )
                continue
            if token in REDIRECTIONS or (token.isdigit() and _fd_redirect(tokens, i, text)):
                if token.isdigit():
                    next(iterator, None)
                if token.startswith("<") or (token.isdigit() and tokens[i + 1].startswith("<")):
                    raise Unconvertible(
                        "reads its standard input from a file; a scheduled command gets none"
                    )
                next(iterator, None)
                redirected = True
                continue
            if not piped:
                steps[-1].append(token)
        if redirected:
            output_notes.append(OUTPUT_NOTE)
        if steps and not steps[-1] and separators and separators[-1] == ";":
            steps.pop()
            separators.pop()
        return steps, separators, output_notes

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def _is_django(self, step: list[str]) -> bool:
        """Whether the step runs manage.py or django-admin, however it is wrapped."""
        return any(
            "manage.py" in word or "django-admin" in word or word == "django" for word in step
        )

    def _preparation(self, step: list[str]) -> None:
        if not step:
            return
        word = step[0]
        if word == "cd":
            self._note(
                f"cd {' '.join(step[1:])} dropped: the scheduler runs in its own project directory"
            )
        elif word in ("source", "."):
            target = " ".join(step[1:])
            if target.endswith("activate"):
                self._note(f"{word} {target} dropped: the scheduler runs in its own virtualenv")
            else:
                self._note(
                    f"{word} {target} dropped: the scheduler's environment must provide "
                    f"what it sets (systemd EnvironmentFile=)"
                )
        elif word == "export":
            for assignment in step[1:]:
                self._environment(assignment)
        elif word in PREPARATION:
            self._note(f"{' '.join(step)} dropped")
        elif _ASSIGNMENT.match(word) and all(_ASSIGNMENT.match(w) for w in step):
            for assignment in step:
                self._environment(assignment)
        else:
            raise Unconvertible(
                f"runs {word!r} before the management command; a schedule runs one command"
            )

    def _afterwards(self, separator: str, step: list[str]) -> None:
        if not step:
            return
        if step[0] in HARMLESS_AFTER or step[:2] == ["exit", "0"]:
            self._note(
                f"{separator} {' '.join(step)} dropped: the run records the real exit status"
            )
            return
        urls = [word for word in step if _URL.match(word)]
        if step[0] in ("curl", "wget") and separator in ("&&", ";") and len(urls) == 1:
            self.ping_url = urls[0]
            self._note(
                f"the {step[0]} ping after the command became ping_url: the scheduler pings "
                f"it after each successful run (and /fail after a failed one)"
            )
            return
        raise Unconvertible(
            f"runs {step[0]!r} after the management command; a schedule runs one command"
        )

    def _environment(self, assignment: str) -> None:
        match = _ASSIGNMENT.match(assignment)
        assert match is not None, assignment  # callers pass assignments only
        name, value = match.groups()
        if name == "DJANGO_SETTINGS_MODULE":
            if value != self.settings_module:
                raise Unconvertible(_other_settings(value, self.settings_module))
            self._note(f"{assignment} dropped: the scheduler runs with these settings")
        elif name in HARMLESS_VARIABLES:
            self._note(f"{assignment} dropped: not needed inside the scheduler")
        else:
            raise Unconvertible(
                f"sets {name} for this command only; a schedule cannot set environment "
                f"variables (make it an option of the command, or set it for the scheduler)"
            )

    def _invocation(self, step: list[str]) -> None:
        rest = self._unwrap(step, quiet=False)
        if rest is None:
            raise Unconvertible(
                f"runs the management command through {step[0]!r}, which a schedule "
                f"cannot reproduce"
            )
        if not rest or rest[0].startswith("-"):
            raise Unconvertible("no management command name after manage.py")
        self.command, args = rest[0], rest[1:]
        self.args = self._django_options(args)
        for arg in self.args:
            if "$" in arg:
                raise Unconvertible(
                    f"argument {arg!r} uses a shell variable; schedule arguments are not expanded"
                )
            if "{" in arg or "}" in arg:
                raise Unconvertible(
                    f"argument {arg!r} has braces, which schedule arguments read as "
                    f"placeholders ({{scheduled_for}}); write them as {{{{ }}}} in admin"
                )

    def _django_options(self, args: list[str]) -> list[str]:
        kept = []
        iterator = iter(args)
        for arg in iterator:
            option, equals, value = arg.partition("=")
            if option in ("--settings", "--pythonpath"):
                if not equals:
                    value = next(iterator, "")
                if option == "--settings" and value != self.settings_module:
                    raise Unconvertible(_other_settings(value, self.settings_module))
                self._note(f"{option} {value} dropped: the scheduler runs with its own settings")
                continue
            kept.append(arg)
        return kept

    def _unwrap(self, step: list[str], *, quiet: bool) -> list[str] | None:
        """The words after ``manage.py``/``django-admin`` with wrappers peeled off, or None."""
        note = (lambda text: None) if quiet else self._note
        words = list(step)
        while words:
            word = words[0]
            base = word.rsplit("/", 1)[-1]
            if _ASSIGNMENT.match(word):
                if not quiet:
                    self._environment(word)
                words.pop(0)
            elif base == "exec":
                words.pop(0)
            elif base == "env":
                words.pop(0)
                while words and words[0].startswith("-"):
                    words.pop(0)
            elif base == "nice":
                words = _drop_options(words[1:], with_value={"-n", "--adjustment"})
                note("nice dropped: the scheduler does not change a command's priority")
            elif base == "ionice":
                words = _drop_options(words[1:], with_value={"-c", "-n", "--class", "--classdata"})
                note("ionice dropped: the scheduler does not change a command's I/O priority")
            elif base == "timeout":
                words = _drop_options(
                    words[1:], with_value={"-s", "-k", "--signal", "--kill-after"}
                )
                if not words or not _DURATION.match(words[0]):
                    raise Unconvertible("timeout without a duration")
                if not quiet:
                    self.timeout = _seconds(words[0])
                    note(f"timeout {words[0]} became the schedule's timeout ({self.timeout} s)")
                words.pop(0)
            elif base == "flock":
                words = self._flock(words[1:], note)
            elif base in ("run-one", "run-one-constantly"):
                words.pop(0)
                note(
                    f"{base} dropped: a schedule skips a fire time while its previous run is "
                    f"still running (overlap=skip, the default)"
                )
            elif base == "chronic":
                words.pop(0)
                note(
                    "chronic dropped: the scheduler records all output and mails ADMINS "
                    "about failures"
                )
            elif base in ("uv", "poetry", "pipenv") and words[1:2] == ["run"]:
                words = _drop_options(words[2:], with_value={"--directory", "--project"})
                note(f"{base} run dropped: the scheduler runs in its own virtualenv")
            elif (
                base in ("sh", "bash", "dash")
                and len(words) >= 3
                and words[1] in ("-c", "-lc", "-ec")
            ):
                inner = _Job(self.settings_module, [] if quiet else self.notes)
                inner.read(words[2])
                if not quiet:
                    self.timeout = self.timeout or inner.timeout
                    self.ping_url = self.ping_url or inner.ping_url
                return [inner.command, *inner.args]
            elif _PYTHON.match(base):
                words = _drop_options(words[1:], with_value={"-W", "-X"})
                if words[:2] == ["-m", "django"]:
                    return words[2:]
                if not words or words[0].rsplit("/", 1)[-1] != "manage.py":
                    return None
                return words[1:]
            elif base == "manage.py":
                return words[1:]
            elif base in ("django-admin", "django-admin.py"):
                return words[1:]
            else:
                return None
        return None

    def _flock(self, words: list[str], note: Callable[[str], None]) -> list[str]:
        waits = True
        while words and words[0].startswith("-"):
            option = words.pop(0)
            if option in ("-n", "--nb", "--nonblock"):
                waits = False
            elif option in ("-w", "--wait", "--timeout", "-E", "--conflict-exit-code"):
                if words:
                    words.pop(0)
            elif option.startswith(("-w", "-E")) and len(option) > 2:
                pass
        if not words:
            raise Unconvertible("flock without a lock file")
        words.pop(0)
        note(
            "flock dropped: a schedule skips a fire time while its previous run is still "
            "running (overlap=skip, the default)"
            + ("" if not waits else "; flock without -n waited for it instead")
        )
        if words and words[0] in ("-c", "--command"):
            return ["sh", "-c", words[1] if len(words) > 1 else ""]
        return words


def _drop_options(words: list[str], with_value: set[str]) -> list[str]:
    words = list(words)
    while words and words[0].startswith("-") and words[0] not in ("-m", "-c"):
        option = words.pop(0)
        if option in with_value and words:
            words.pop(0)
    return words


def _seconds(duration: str) -> int:
    match = _DURATION.match(duration)
    assert match is not None, duration  # callers pass durations only
    number, unit = match.groups()
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return max(1, math.ceil(float(number) * factor))


def _fd_redirect(tokens: list[str], index: int, text: str) -> bool:
    """True for the ``2`` of ``2>&1``: a digit written right before a redirection."""
    following = tokens[index + 1] if index + 1 < len(tokens) else ""
    return following in REDIRECTIONS and f"{tokens[index]}{following}" in text


def _name_uniquely(crontab: Crontab) -> None:
    """Name each proposal after its command line, adding the cron (and zone) where needed.

    Names depend only on the file, so importing it again finds the same schedules.
    """
    kept: list[Proposal] = []
    seen: dict[tuple[str, tuple[str, ...], str, str], int] = {}
    for proposal in crontab.proposals:
        key = (proposal.command, tuple(proposal.args), proposal.cron, proposal.timezone)
        if key in seen:
            crontab.refused.append(
                Refusal(proposal.line, proposal.text, f"the same schedule as line {seen[key]}")
            )
            continue
        seen[key] = proposal.line
        kept.append(proposal)
    bases = [" ".join([p.command, *p.args]) for p in kept]
    timings = [(base, p.cron) for base, p in zip(bases, kept, strict=True)]
    for proposal, base, timing in zip(kept, bases, timings, strict=True):
        if bases.count(base) == 1:
            name = base
        elif timings.count(timing) == 1:
            name = f"{base} ({proposal.cron})"
        else:
            name = f"{base} ({proposal.cron} {proposal.timezone})"
        proposal.name = name if len(name) <= 200 else name[:199] + "…"
    crontab.proposals = kept
    crontab.refused.sort(key=lambda refusal: refusal.line)


@dataclass
class Reviewed:
    """A proposal checked against the database: valid or not, and whether it exists."""

    proposal: Proposal
    errors: list[str]
    existing: Schedule | None
    status: str
    next_fire_times: list[datetime]


def review(crontab: Crontab, now: datetime) -> list[Reviewed]:
    """Validate each proposal like admin input and find the ones already in the database."""
    reviewed = []
    for proposal in crontab.proposals:
        schedule = proposal.schedule()
        errors: list[str] = []
        try:
            schedule.full_clean(validate_unique=False)
        except ValidationError as exc:
            errors = [
                f"{name}: {message}" if name != "__all__" else message
                for name, messages in exc.message_dict.items()
                for message in messages
            ]
        existing, status = _existing(schedule)
        fires = [] if errors else schedule.next_fire_times(now, 3)
        if errors:
            status = "invalid"
        reviewed.append(Reviewed(proposal, errors, existing, status, fires))
    return reviewed


_COMPARED = ("command", "args", "cron", "timezone", "timeout", "ping_url")


def _existing(schedule: Schedule) -> tuple[Schedule | None, str]:
    same = Schedule.objects.filter(name=schedule.name).first()
    if same is not None:
        if all(getattr(same, f) == getattr(schedule, f) for f in _COMPARED):
            return same, "exists, unchanged"
        return same, "name taken by a different schedule: left alone"
    twin = Schedule.objects.filter(
        command=schedule.command, cron=schedule.cron, timezone=schedule.timezone
    )
    for candidate in twin:
        if candidate.args == schedule.args:
            return candidate, f"exists as {candidate.name!r}, unchanged"
    return None, "would create"


def apply(reviewed: list[Reviewed]) -> None:
    """Create the valid proposals that do not exist yet, all or none."""
    with transaction.atomic(), changed_by(terminal_user(), "crontab"):
        for item in reviewed:
            if item.errors or item.existing is not None:
                continue
            schedule = item.proposal.schedule()
            schedule.full_clean()
            schedule.save()
            item.existing = schedule
            item.status = "created"


def read_source(path: str, stdin: TextIO) -> str:
    """The file's text, or standard input for ``-``; ``CommandError`` if it cannot be read."""
    if path == "-":
        return stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read {path}: {exc}") from None


def report(source: str, crontab: Crontab, reviewed: list[Reviewed]) -> dict[str, Any]:
    """What the import found and did, as plain data (JSON for scripts, text for people)."""
    schedules = []
    refused: list[dict[str, Any]] = [
        {"line": refusal.line, "text": refusal.text, "reason": refusal.reason}
        for refusal in crontab.refused
    ]
    for item in reviewed:
        proposal = item.proposal
        if item.errors:
            refused.append(
                {
                    "line": proposal.line,
                    "text": proposal.text,
                    "reason": "refused like admin input: " + "; ".join(item.errors),
                }
            )
            continue
        schedules.append(
            {
                "line": proposal.line,
                "text": proposal.text,
                "name": proposal.name,
                "command": proposal.command,
                "args": proposal.args,
                "cron": proposal.cron,
                "timezone": proposal.timezone,
                "timeout": proposal.timeout,
                "overlap": "skip",
                "ping_url": proposal.ping_url or None,
                "next": [fire.isoformat() for fire in item.next_fire_times],
                "notes": proposal.notes,
                "status": item.status,
            }
        )
    refused.sort(key=lambda row: row["line"])
    return {
        "source": "standard input" if source == "-" else source,
        "format": "system crontab (user column)" if crontab.system else "user crontab",
        "schedules": schedules,
        "not_converted": refused,
        "notes": [{"line": n.line, "text": n.text, "note": n.note} for n in crontab.notes],
    }


def render(data: dict[str, Any]) -> str:
    """The report for people: one block per schedule, then the lines left behind."""
    schedules, refused = data["schedules"], data["not_converted"]
    lines = [
        f"{data['source']} ({data['format']}): {len(schedules)} schedule(s), "
        f"{len(refused)} line(s) not converted."
    ]
    for row in schedules:
        lines += ["", f"line {row['line']}: {row['text']}"]
        fields = [
            ("name", row["name"]),
            ("command", " ".join([row["command"], *row["args"]])),
            ("cron", f"{row['cron']}  ({describe_cron(row['cron'])}, {row['timezone']})"),
            ("timeout", f"{row['timeout']} s" if row["timeout"] else None),
            ("ping url", row["ping_url"]),
            ("next", ", ".join(_short(moment) for moment in row["next"])),
            *(("note", note) for note in row["notes"]),
            ("status", row["status"]),
        ]
        lines += [f"  {key:<9} {value}" for key, value in fields if value]
    if refused:
        lines += ["", "Not converted:"]
        for row in refused:
            lines += [f"  line {row['line']}: {row['text']}", f"    {row['reason']}"]
    if data["notes"]:
        lines += ["", "Notes:"]
        lines += [f"  line {row['line']}: {row['text']}: {row['note']}" for row in data["notes"]]
    return "\n".join(lines)


def _short(moment: str) -> str:
    """``2025-03-04T03:30:00+01:00`` → ``2025-03-04 03:30 +01:00``."""
    value = datetime.fromisoformat(moment)
    return value.strftime("%Y-%m-%d %H:%M %z")[:-2] + ":" + value.strftime("%z")[-2:]
