"""SQLite tuning the app does itself, so a stock ``startproject`` database takes the daemon.

Every SQLite connection of a project with the app gets a busy timeout (writers wait for
each other instead of failing), WAL journaling (the admin reads while a daemon writes) and
``synchronous=NORMAL`` (safe with WAL, one fsync per checkpoint rather than per commit),
unless the project's ``OPTIONS`` already decide these. In the scheduler's own processes
transactions also begin IMMEDIATE: a transaction that reads and then writes (a claim, the
job store's update) holds the write lock from its start, so it waits its turn rather than
failing half-way. The project's other processes keep DEFERRED unless their settings say
otherwise; the ``scheduler.W010`` check shows the line that makes them IMMEDIATE too.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any, cast

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

if TYPE_CHECKING:
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

logger = logging.getLogger("scheduler.sqlite")

BUSY_TIMEOUT_MS = 20_000

_immediate = False


def tune_connection(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """On ``connection_created``: set what the project's SQLite ``OPTIONS`` leave unset."""
    if connection.vendor != "sqlite":
        return
    connection = cast("SQLiteWrapper", connection)
    options = connection.settings_dict.get("OPTIONS") or {}
    if _immediate and not options.get("transaction_mode"):
        connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]  # not in the stubs
    if connection.is_in_memory_db():
        return
    raw = connection.connection
    if "timeout" not in options:
        raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if options.get("init_command"):
        return  # the project runs its own PRAGMAs
    try:
        mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() == "delete":  # SQLite's default: a project's own choice stands
            mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() == "wal":
            raw.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.OperationalError as exc:  # e.g. a read-only file: leave it as it is
        logger.debug("SQLite database %s not tuned: %s", connection.alias, exc)


def use_immediate_transactions() -> None:
    """Begin this process's SQLite transactions IMMEDIATE where the settings leave it open.

    Called by the scheduler's own processes; connections opened already are switched too.
    """
    global _immediate
    _immediate = True
    for connection in connections.all(initialized_only=True):
        options = connection.settings_dict.get("OPTIONS") or {}
        if (
            connection.vendor == "sqlite"
            and connection.connection is not None
            and not options.get("transaction_mode")
        ):
            connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]  # not in the stubs
