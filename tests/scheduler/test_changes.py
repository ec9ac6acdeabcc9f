"""Change watching: what wakes the daemon, on each database, and what does not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.utils import timezone

from scheduler.changes import ANYTHING, DAEMONS, RUNS, SCHEDULES, Changes, watch
from scheduler.models import Heartbeat, Run, Schedule, Status
from tests.conftest import in_other_connection

pytestmark = pytest.mark.django_db(transaction=True)

on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's probe")
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="notifications")


@pytest.fixture
def changes() -> Iterator[Changes]:
    changes = watch(poll_interval=0.05)
    changes.start()
    yield changes
    changes.close()


def wait_for_change(changes: Changes, timeout: float = 5.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if changed := changes.wait(0.2):
            return changed
    return set()


def test_a_wake_ends_a_long_wait_at_once_with_its_kind(changes):
    threading.Timer(0.1, changes.wake, args=(RUNS,)).start()
    began = time.monotonic()
    assert changes.wait(30) >= {RUNS}
    assert time.monotonic() - began < 5


def test_a_wake_before_the_wait_is_not_lost(changes):
    changes.wake(SCHEDULES)
    assert SCHEDULES in changes.wait(0)


def test_a_wake_after_close_is_harmless():
    changes = watch(poll_interval=0.05)
    changes.start()
    changes.close()
    changes.wake()  # a stop request arriving during shutdown


def test_polling_counts_each_poll_interval_as_a_change():
    changes = Changes(poll_interval=0.05)
    changes.start()
    try:
        assert changes.wait(0) == set()
        time.sleep(0.06)
        assert changes.wait(0.01) == {ANYTHING}
    finally:
        changes.close()


@on_sqlite
def test_sqlite_nothing_committed_is_no_change(changes):
    assert changes.wait(0.3) == set()
    assert not changes.announces_daemons  # a lone daemon looks for others now and then


@on_sqlite
def test_sqlite_a_commit_by_another_connection_is_a_change(changes, make_schedule):
    in_other_connection(lambda: make_schedule(name="from admin", interval=60))
    assert wait_for_change(changes) == {ANYTHING}
    assert changes.wait(0.2) == set()  # seen once


@on_sqlite
def test_sqlite_the_daemons_own_writes_do_not_wake_it(changes, make_schedule):
    make_schedule(name="written by this thread", interval=60)
    assert changes.wait(0.3) == set()


@on_sqlite
def test_sqlite_a_new_connection_counts_as_a_change(changes):
    connection.close()
    assert changes.wait(0.2) == {ANYTHING}


@on_postgres
def test_postgres_an_idle_wait_sends_no_statement(changes, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert changes.wait(0.3) == set()


@on_postgres
def test_postgres_a_schedule_saved_elsewhere_wakes_for_schedules_and_names_it(
    changes, make_schedule
):
    made = in_other_connection(lambda: make_schedule(name="from admin", interval=60))
    assert wait_for_change(changes) == {SCHEDULES}
    assert changes.take_schedule_ids() == {made.pk}
    assert changes.take_schedule_ids() == set()  # taken once


@on_postgres
def test_postgres_a_raw_sql_edit_wakes_too(changes, make_schedule):
    schedule = make_schedule(name="edited by hand", interval=60)
    changes.wait(0.2)

    def raw_update() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE scheduler_schedule SET interval = 120 WHERE id = %s", [schedule.pk]
            )

    in_other_connection(raw_update)
    assert wait_for_change(changes) == {SCHEDULES}
    assert changes.take_schedule_ids() == {schedule.pk}


@on_postgres
def test_postgres_an_update_of_many_rows_asks_for_all_and_of_none_says_nothing(changes):
    Schedule.objects.bulk_create(
        [Schedule(name=f"many {index}", command="say", interval=60) for index in range(2500)],
        batch_size=500,
    )
    while changes.wait(0.3):  # the inserts' own notifications
        pass
    changes.take_schedule_ids()
    in_other_connection(lambda: Schedule.objects.update(interval=120))
    assert wait_for_change(changes) == {SCHEDULES}
    assert changes.take_schedule_ids() is None
    in_other_connection(lambda: Schedule.objects.filter(name="nobody").update(interval=60))
    assert changes.wait(0.5) == set()


@on_postgres
def test_postgres_a_queued_run_wakes_for_runs_and_a_finished_one_does_not(changes, make_schedule):
    schedule = make_schedule(name="run now", interval=60)
    changes.wait(0.2)
    in_other_connection(
        lambda: Run.objects.create(
            schedule=schedule, command="noop", status=Status.QUEUED, scheduled_for=timezone.now()
        )
    )
    assert wait_for_change(changes) == {RUNS}
    in_other_connection(
        lambda: Run.objects.create(
            schedule=schedule, command="noop", status=Status.SUCCEEDED, scheduled_for=timezone.now()
        )
    )
    assert changes.wait(0.5) == set()


@on_postgres
def test_postgres_a_daemon_starting_and_stopping_to_fire_and_stopping_wakes_for_daemons(changes):
    assert changes.announces_daemons
    daemon = Heartbeat.start(host="elsewhere", pid=2)
    assert changes.wait(0.5) == set()  # not firing yet: it plans the schedules first
    for step in (daemon.start_firing, daemon.stop_firing, daemon.stop):
        step()
        assert wait_for_change(changes) == {DAEMONS}
    daemon.beat()
    assert changes.wait(0.5) == set()
    Heartbeat.start(host="elsewhere", pid=3, kind="cli").stop()  # one run in a terminal
    assert changes.wait(0.5) == set()


@on_postgres
def test_postgres_a_lost_listening_connection_reconnects_and_reports_everything(
    changes, make_schedule
):
    def terminate_listener() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE"
                " 'LISTEN scheduler_changes%%' AND datname = current_database()"
            )

    in_other_connection(terminate_listener)
    assert wait_for_change(changes) == {SCHEDULES, RUNS, DAEMONS}
    assert changes.take_schedule_ids() is None  # nothing listened: read them all
    in_other_connection(lambda: make_schedule(name="after the reconnect", interval=60))
    assert wait_for_change(changes) == {SCHEDULES}
