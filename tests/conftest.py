"""Fixtures shared by the whole suite: schedule factories and real daemon processes.

``--clock-offset-days N`` runs the suite with the clock moved N days ahead (or back), so a
test that passes today only because of today's date shows up before that date comes.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.db import connection, connections

from scheduler.models import Reason, Run, Schedule
from tests import manage_py
from tests.postgres import pg_ctl


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-offset-days",
        type=int,
        default=0,
        metavar="N",
        help=(
            "move this process's clock N days from the real date (time-machine, ticking) so "
            "tests that depend on the calendar date fail; deselects tests marked e2e, whose "
            "daemon processes keep the real clock; the database's own clock (SQL NOW()) is "
            "not moved either, so tests take every time from Python"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    days = config.getoption("clock_offset_days")
    if days:
        traveller = time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


def pytest_report_header(config: pytest.Config) -> str | None:
    days = config.getoption("clock_offset_days")
    return f"clock moved {days} days: now {datetime.now(UTC):%Y-%m-%d %H:%M} UTC" if days else None


# Fixtures that start real processes, servers or a browser: a test using one is end to end.
E2E_FIXTURES = frozenset({"start_daemon", "postgres_server", "browser", "page"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ()))
        and not item.get_closest_marker("e2e")
    ]
    if unmarked:
        raise pytest.UsageError(
            "end-to-end tests (they use " + ", ".join(sorted(E2E_FIXTURES)) + ") need "
            "@pytest.mark.e2e: " + ", ".join(unmarked)
        )
    if not config.getoption("clock_offset_days"):
        return
    e2e = [item for item in items if item.get_closest_marker("e2e")]
    if e2e:
        config.hook.pytest_deselected(items=e2e)
        items[:] = [item for item in items if not item.get_closest_marker("e2e")]


@pytest.fixture
def make_schedule(db) -> Callable[..., Schedule]:
    """Create validated schedules; defaults to ``say hello`` every 60 s."""
    counter = itertools.count(1)

    def make(**fields: Any) -> Schedule:
        fields.setdefault("name", f"schedule {next(counter)}")
        fields.setdefault("command", "say")
        fields.setdefault("args", ["hello"])
        if "cron" not in fields:
            fields.setdefault("interval", 60)
        schedule = Schedule(**fields)
        schedule.full_clean()
        schedule.save()
        return schedule

    return make


def database_url() -> str:
    """A DATABASE_URL for the database the test process is using right now."""
    settings = connection.settings_dict
    if settings["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{settings['NAME']}"
    return (
        f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST']}:"
        f"{settings['PORT']}/{settings['NAME']}"
    )


def pid_running(pid: int) -> bool:
    """Return whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return False


def process_name(pid: int) -> bytes:
    """Return what ``ps -o comm`` shows for ``pid``; empty once it is gone."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as comm:
            return comm.read().strip()
    except OSError:
        return b""


def in_other_connection(work: Callable[[], Any], timeout: float = 10) -> Any:
    """Run ``work`` in a thread, so on a database connection of its own; return its result.

    What it raises is raised here, as is a wait longer than ``timeout`` seconds.
    """
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as error:
            outcome.append((False, error))
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert outcome, f"still waiting after {timeout} s"
    returned, value = outcome[0]
    if not returned:
        raise value
    return value


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def fire_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's fire times in [start, end]: what end-to-end tests expect to have run."""
    fires = []
    for fire in schedule.timing.iter_after(start - timedelta(microseconds=1)):
        if fire > end:
            break
        fires.append(fire)
    return fires


def assert_each_fire_time_once(
    schedule: Schedule, start: datetime, end: datetime, *, at_least: int
) -> None:
    """No fire time of the schedule ran twice, and each one in [start, end] ran."""
    fired = list(
        Run.objects.filter(schedule=schedule)
        .exclude(reason=Reason.MANUAL)
        .values_list("scheduled_for", flat=True)
    )
    assert [fire for fire, count in Counter(fired).items() if count > 1] == []
    expected = fire_times(schedule, start, end)
    assert len(expected) >= at_least
    missing = sorted(set(expected) - set(fired))
    assert missing == [], f"{schedule} missed {len(missing)} of {len(expected)}"


class ManagePy:
    """A real ``manage.py`` process (the daemon, a task worker) on the test database."""

    def __init__(
        self, log_path: Path, extra_env: dict[str, str], args: list[str], ready: str
    ) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.log_path = log_path
        self.ready = ready
        self._log = open(log_path, "wb")
        self.process = manage_py.spawn(args, self._log, env)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_started(self, timeout: float = 20) -> None:
        wait_for(lambda: self.ready in self.log or self.process.poll() is not None, timeout)
        assert self.process.poll() is None, f"{self.log_path.name} exited early:\n{self.log}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        returncode = manage_py.stop(self.process, signum, timeout)
        self._log.close()
        return returncode


@contextmanager
def managed(tmp_path: Path, name: str) -> Iterator[Callable[..., ManagePy]]:
    """Start ``manage.py`` processes; all are stopped (and their process groups killed)."""
    processes: list[ManagePy] = []

    def start(
        *args: str,
        ready: str,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> ManagePy:
        extra = {"SCHEDULER_TEST_SETTINGS": json.dumps(settings)} if settings else {}
        process = ManagePy(
            tmp_path / f"{name}-{len(processes)}.log", {**extra, **(env or {})}, list(args), ready
        )
        processes.append(process)
        process.wait_until_started()
        return process

    try:
        yield start
    finally:
        for process in processes:
            process.stop()
        for process in processes:
            manage_py.kill_group(process.pid)


@pytest.fixture
def start_daemon(transactional_db, tmp_path) -> Iterator[Callable[..., ManagePy]]:
    """Start real scheduler processes on the test database; all are stopped afterwards."""
    with managed(tmp_path, "daemon") as start:
        yield partial(start, "runscheduler", ready="Scheduler started")


class PostgresServer:
    """The PostgreSQL server ``tests/postgres.py`` started, which a test may take away."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def _pg_ctl(self, *args: str) -> None:
        config = self.config
        pg_ctl(Path(config["bin"]), config["owner"], Path(config["data"]), *args)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-l", self.config["log"], "start")


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """The suite's PostgreSQL server; the test is skipped on SQLite runs."""
    config = os.environ.get("SCHEDULER_TEST_PG")
    if not config or connection.vendor != "postgresql":
        pytest.skip("needs the PostgreSQL server started by tests/postgres.py")
    server = PostgresServer(json.loads(config))
    yield server
    if not Path(server.config["data"], "postmaster.pid").exists():
        server.start()
    connection.close()


class SQLiteSteps:
    """Count the steps of SQLite's virtual machine in the block, by tens."""

    def __enter__(self) -> SQLiteSteps:
        self.count = 0
        connection.ensure_connection()
        connection.connection.set_progress_handler(self._step, 10)
        return self

    def __exit__(self, *exc: object) -> None:
        connection.connection.set_progress_handler(None, 10)

    def _step(self) -> int:
        self.count += 1
        return 0
