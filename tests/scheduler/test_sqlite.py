import sqlite3
import threading

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.db.backends.sqlite3.base import DatabaseWrapper

from scheduler import sqlite

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite tuning")


@pytest.fixture
def open_database(tmp_path, django_db_blocker):
    """Open Django connections to a fresh SQLite file with the given OPTIONS."""
    opened = []
    django_db_blocker.unblock()

    def open_(**options) -> DatabaseWrapper:
        settings = {**connection.settings_dict, "NAME": str(tmp_path / "db.sqlite3")}
        settings["OPTIONS"] = options
        wrapper = DatabaseWrapper(settings, alias=f"tuning{len(opened)}")
        wrapper.ensure_connection()
        opened.append(wrapper)
        return wrapper

    yield open_
    for wrapper in opened:
        wrapper.close()
    django_db_blocker.restore()


def pragma(wrapper: DatabaseWrapper, name: str):
    return wrapper.connection.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_stock_sqlite_file_gets_wal_a_busy_timeout_and_normal_sync(open_database):
    wrapper = open_database()
    assert pragma(wrapper, "journal_mode") == "wal"
    assert pragma(wrapper, "busy_timeout") == sqlite.BUSY_TIMEOUT_MS
    assert pragma(wrapper, "synchronous") == 1  # NORMAL


def test_the_projects_own_sqlite_options_stand(open_database):
    wrapper = open_database(timeout=3, init_command="PRAGMA journal_mode=DELETE")
    assert pragma(wrapper, "journal_mode") == "delete"
    assert pragma(wrapper, "busy_timeout") == 3000
    assert wrapper.transaction_mode is None


@pytest.fixture
def immediate(monkeypatch):
    """This process as one of the scheduler's own (runscheduler calls this at start)."""
    monkeypatch.setattr(sqlite, "_immediate", False)
    sqlite.use_immediate_transactions()


def test_the_schedulers_processes_begin_sqlite_transactions_immediate(immediate, open_database):
    assert open_database().transaction_mode == "IMMEDIATE"
    assert open_database(transaction_mode="DEFERRED").transaction_mode == "DEFERRED"


def read_then_write_while_another_writer_commits(wrapper: DatabaseWrapper, path: str) -> None:
    """Another connection holds the write lock for a moment; a transaction reads, then writes."""
    raw = wrapper.connection
    raw.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    other = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    thread = threading.Timer(0.3, other.execute, ["COMMIT"])
    thread.start()
    try:
        with transaction.atomic(using=wrapper.alias), wrapper.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM t")
            cursor.execute("INSERT INTO t VALUES (2)")
    finally:
        thread.join()
        other.close()


@pytest.fixture
def registered(open_database):
    """A tuned connection that transaction.atomic can find by its alias."""
    aliases = []

    def register(**options) -> DatabaseWrapper:
        wrapper = open_database(**options)
        connections[wrapper.alias] = wrapper
        aliases.append(wrapper.alias)
        return wrapper

    yield register
    for alias in aliases:
        del connections[alias]


def test_a_deferred_read_then_write_fails_under_a_concurrent_writer(registered):
    wrapper = registered()
    with pytest.raises(OperationalError, match="locked"):
        read_then_write_while_another_writer_commits(wrapper, wrapper.settings_dict["NAME"])


def test_an_immediate_read_then_write_waits_for_a_concurrent_writer(immediate, registered):
    wrapper = registered()
    read_then_write_while_another_writer_commits(wrapper, wrapper.settings_dict["NAME"])
    assert wrapper.connection.execute("SELECT count(*) FROM t").fetchone()[0] == 2
