"""Wake the daemon when schedules or queued runs change, instead of re-reading on a timer.

- PostgreSQL: triggers (migrations 0010, 0011) ``NOTIFY scheduler_changes`` on every
  change to the schedule table, on every run queued and on every daemon that starts or
  stops; a connection of the daemon's own
  ``LISTEN`` s. An edit from admin, another process or raw SQL wakes the daemon at once,
  and waiting sends no statement.
- SQLite: ``PRAGMA data_version`` on the daemon's connection tells, in one cheap
  statement every ``POLL_INTERVAL``, whether another connection committed anything.
- Any other database: every ``POLL_INTERVAL`` counts as a change.

:meth:`Changes.wait` returns what changed: :data:`SCHEDULES` (schedule rows, named by
:meth:`Changes.take_schedule_ids`), :data:`RUNS` (runs were queued), :data:`DAEMONS`
(daemons started or stopped) or :data:`ANYTHING` (look at schedules and runs, cheaply
first).
"""

from __future__ import annotations

import logging
import os
import queue
import select
import time
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger("scheduler.daemon")

CHANNEL = "scheduler_changes"
SCHEDULES = "schedules"
RUNS = "runs"
DAEMONS = "daemons"
ANYTHING = "anything"
PAYLOADS = {"schedule": SCHEDULES, "run": RUNS, "daemon": DAEMONS}


class Changes:
    """Count every ``poll_interval`` as a change; :meth:`wake` ends a wait early."""

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self._read_end = self._write_end = -1  # the wake-up pipe, from start() to close()
        # A SimpleQueue may be written from a signal handler (request_stop) safely.
        self._woken: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._last_poll = time.monotonic()

    def start(self) -> None:
        """Start watching; changes from now on are seen (call before the first read)."""
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._read_end, False)
        os.set_blocking(self._write_end, False)

    def describe(self) -> str:
        """Say how changes are watched, for the start-up log line."""
        return f"by polling every {self.poll_interval:g} s"

    @property
    def announces_daemons(self) -> bool:
        """Return whether :data:`DAEMONS` is reported when daemons start or stop."""
        return False

    def wake(self, kind: str = ANYTHING) -> None:
        """End the current or next :meth:`wait` at once, reporting ``kind``.

        Safe from any thread and from a signal handler.
        """
        self._woken.put(kind)
        try:
            os.write(self._write_end, b"!")
        except OSError:  # full: a wake-up is pending anyway; closed: no wait to end
            pass

    def wait(self, timeout: float) -> set[str]:
        """Wait up to ``timeout`` seconds for a change; return what changed (empty: none)."""
        changed = self._wait(max(0.0, timeout))
        while not self._woken.empty():
            changed.add(self._woken.get())
        return changed

    def take_schedule_ids(self) -> set[int] | None:
        """Return the ids of the schedules changed since the last call; None: any may have."""
        return None

    def close(self) -> None:
        """Stop watching and release the pipe."""
        for end in (self._read_end, self._write_end):
            if end >= 0:
                os.close(end)
        self._read_end = self._write_end = -1

    def _wait(self, timeout: float) -> set[str]:
        """Sleep, probing every ``poll_interval``, until a change, a wake-up or ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            woken, _ = self._sleep(min(deadline - time.monotonic(), self._until_poll()))
            if woken:
                return set()
            if self._until_poll() <= 0:
                self._last_poll = time.monotonic()
                if self._probe():
                    return {ANYTHING}
            if time.monotonic() >= deadline:
                return set()

    def _probe(self) -> bool:
        return True

    def _until_poll(self) -> float:
        return max(0.0, self._last_poll + self.poll_interval - time.monotonic())

    def _sleep(self, timeout: float, *files: Any) -> tuple[bool, list[Any]]:
        """Wait for ``files`` to be readable or a wake-up; return (woken, readable files)."""
        ready = select.select([self._read_end, *files], [], [], max(0.0, timeout))[0]
        woken = self._read_end in ready
        if woken:
            try:
                while os.read(self._read_end, 4096):
                    pass
            except BlockingIOError:
                pass
        return woken, [f for f in ready if f != self._read_end]


class DataVersionProbe(Changes):
    """SQLite: a change is a new ``PRAGMA data_version`` on this thread's connection.

    The value moves when another connection commits; the daemon's own loop writes
    (heartbeats) do not wake it. A new connection counts as a change.
    """

    def __init__(self, poll_interval: float, alias: str = DEFAULT_DB_ALIAS) -> None:
        super().__init__(poll_interval)
        self.alias = alias
        self._seen: tuple[object, int] | None = None

    def start(self) -> None:
        super().start()
        self._probe()

    def describe(self) -> str:
        return f"by probing SQLite's data_version every {self.poll_interval:g} s"

    def _probe(self) -> bool:
        db = connections[self.alias]
        try:
            with db.cursor() as cursor:
                cursor.execute("PRAGMA data_version")
                version = cursor.fetchone()[0]
        except DatabaseError:
            self._seen = None
            return True
        seen, self._seen = self._seen, (db.connection, version)
        return seen != self._seen


class Notifications(Changes):
    """PostgreSQL: ``LISTEN`` on a connection of its own, not shared with any thread.

    While it cannot connect it retries every ``poll_interval``; on (re)connecting it
    reports that everything may have changed, as nothing listened meanwhile.
    """

    def __init__(self, poll_interval: float, alias: str = DEFAULT_DB_ALIAS) -> None:
        super().__init__(poll_interval)
        self.alias = alias
        self._db: Any = None
        self._schedule_ids: set[int] | None = set()

    def start(self) -> None:
        super().start()
        self._connect()

    def describe(self) -> str:
        return f"by PostgreSQL notifications on {CHANNEL}"

    @property
    def announces_daemons(self) -> bool:
        return self._db is not None

    def take_schedule_ids(self) -> set[int] | None:
        ids, self._schedule_ids = self._schedule_ids, set()
        return ids

    def close(self) -> None:
        self._disconnect()
        super().close()

    def _wait(self, timeout: float) -> set[str]:
        if self._db is None:
            if not super()._wait(timeout):
                return set()
            self._schedule_ids = None  # nothing listened meanwhile
            return {SCHEDULES, RUNS, DAEMONS}
        raw = self._db.connection
        if not self._sleep(timeout, raw)[1]:
            return set()
        try:
            payloads = _received(raw)
        except self._db.Database.Error as exc:
            logger.warning("Lost the connection that listens for changes: %s", exc)
            self._disconnect()
            self._last_poll = time.monotonic()
            return set()
        return {self._kind(payload) for payload in payloads}

    def _kind(self, payload: str) -> str:
        """Return what ``payload`` says changed; keep the schedule ids it names."""
        name, _, ids = payload.partition(":")
        if name == "schedule" and self._schedule_ids is not None:
            if ids:
                self._schedule_ids.update(int(pk) for pk in ids.split(","))
            else:  # too many to name, or a TRUNCATE
                self._schedule_ids = None
        return PAYLOADS.get(name, ANYTHING)

    def _probe(self) -> bool:
        """Listen again (while disconnected); a success means anything may have changed."""
        return self._connect()

    def _connect(self) -> bool:
        db = connections.create_connection(self.alias)
        try:
            with db.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
        except DatabaseError:
            db.close()
            return False
        self._db = db
        return True

    def _disconnect(self) -> None:
        if self._db is None:
            return
        try:
            with self._db.cursor() as cursor:  # a pooled connection goes back clean
                cursor.execute("UNLISTEN *")
        except DatabaseError:
            pass
        self._db.close()
        self._db = None


def _received(raw: Any) -> list[str]:
    """Return the payloads of the notifications waiting on a psycopg 3 or 2 connection."""
    if hasattr(raw, "pgconn"):
        return [notify.payload for notify in raw.notifies(timeout=0)]
    raw.poll()
    payloads = [notify.payload for notify in raw.notifies]
    raw.notifies.clear()
    return payloads


def watch(poll_interval: float, alias: str = DEFAULT_DB_ALIAS) -> Changes:
    """Return the cheapest way to watch for changes on the database ``alias``."""
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        return Notifications(poll_interval, alias)
    if vendor == "sqlite":
        return DataVersionProbe(poll_interval, alias)
    return Changes(poll_interval)
