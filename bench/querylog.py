"""Counting the SQL statements a process sends, from the outside of the product's code.

A :class:`StatementCounter` is a ``connection.execute_wrapper``: it sees every statement
sent through a Django cursor (on SQLite that includes ``BEGIN IMMEDIATE`` and savepoints;
``COMMIT`` and the connection's set-up ``PRAGMA`` s are driver calls and are not seen). It
also counts new connections, because with ``CONN_MAX_AGE=0`` reconnecting is a real cost.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

from django.db.backends.signals import connection_created


class StatementCounter:
    """Counts statements, their time and their verbs; shared by all threads of a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.seconds = 0.0
        self.connections = 0
        self.verbs: Counter[str] = Counter()

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
            with self._lock:
                self.count += 1
                self.seconds += elapsed
                self.verbs[verb] += 1

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "at": time.time(),
                "count": self.count,
                "seconds": self.seconds,
                "connections": self.connections,
                "verbs": dict(self.verbs),
            }


def install(path: Path) -> StatementCounter:
    """Count every connection's statements; write the totals to ``path`` every second.

    The writing thread starts with the first connection, not here: a daemon forks its
    fork server before it connects, and only while it has no other thread.
    """
    counter = StatementCounter()
    writer = threading.Thread(
        target=_write_every_second, args=(counter, path), name="bench-query-log", daemon=True
    )

    def on_connection(sender, connection, **kwargs) -> None:
        counter.connected()
        # A connection object lives on across reconnects; add the wrapper only once.
        if counter not in connection.execute_wrappers:
            connection.execute_wrappers.append(counter)
        with counter._lock:
            if writer.ident is None:  # not started yet
                writer.start()

    connection_created.connect(on_connection, weak=False, dispatch_uid="bench.querylog")
    return counter


def _write_every_second(counter: StatementCounter, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    # The benchmark leaves this thread's own CPU time out of a process's idle cost.
    writer = {"writer_tid": threading.get_native_id()}
    while True:
        partial.write_text(json.dumps(counter.snapshot() | writer))
        os.replace(partial, path)  # readers never see a half-written file
        time.sleep(1.0)
