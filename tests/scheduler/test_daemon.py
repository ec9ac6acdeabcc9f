"""The daemon's planning: catch-up and job sync, on a controlled clock."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler import forkserver, runner
from scheduler.apscheduler_adapter import JobPlan
from scheduler.catch_up import decide
from scheduler.changes import DAEMONS, RUNS
from scheduler.daemon import SchedulerDaemon
from scheduler.forkserver import children
from scheduler.in_flight import call
from scheduler.models import Heartbeat, Reason, Run, Status
from scheduler.owners import Owner
from scheduler.shares import EVERYTHING, Share
from scheduler.timing import Timing
from tests.conftest import in_other_connection, pid_running, process_name, wait_for

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clock(time_machine):
    """Freeze time at T0; ``clock(t)`` moves it."""
    time_machine.move_to(T0, tick=False)
    return lambda moment: time_machine.move_to(moment, tick=False)


@pytest.fixture
def daemon():
    """A daemon whose APScheduler is started but paused: jobs are stored, none fire."""
    daemon = SchedulerDaemon(poll_interval=0.1)
    daemon.jobs.start(paused=True)
    yield daemon
    daemon.jobs.shutdown()
    daemon.pool.shutdown(wait=True)


def settle(daemon: SchedulerDaemon) -> None:
    daemon.drain(timeout=10)


def sync(daemon: SchedulerDaemon, *, full: bool = False) -> None:
    daemon.planner.sync(timezone.now(), full=full)


def thread_schedule(make_schedule, **fields):
    fields.setdefault("executor", "thread")
    fields.setdefault("created_at", T0)
    return make_schedule(**fields)


def ran(schedule, reason) -> list[Run]:
    return list(Run.objects.filter(schedule=schedule, reason=reason).order_by("scheduled_for"))


@pytest.mark.parametrize("missed", [1, 5, 1000])
def test_downtime_across_many_fire_times_gives_one_catch_up_run(
    clock, daemon, make_schedule, missed
):
    schedule = thread_schedule(make_schedule, interval=60)
    Run.claim(schedule.pk, T0 + timedelta(seconds=60), Reason.SCHEDULED, owner=Owner("h", 1))
    Run.objects.update(status=Status.SUCCEEDED)
    latest_missed = T0 + timedelta(seconds=60 * (1 + missed))
    clock(latest_missed + timedelta(seconds=20))

    sync(daemon, full=True)
    settle(daemon)
    sync(daemon, full=True)
    settle(daemon)

    [run] = ran(schedule, Reason.CATCH_UP)
    assert run.scheduled_for == latest_missed
    assert run.status == Status.SUCCEEDED
    assert "stdout hello 0" in run.stdout


def test_new_schedule_counts_from_its_creation(clock, daemon, make_schedule):
    schedule = thread_schedule(make_schedule, cron="30 2 * * *", created_at=T0)
    clock(T0 + timedelta(hours=4))

    sync(daemon, full=True)
    settle(daemon)

    [run] = ran(schedule, Reason.CATCH_UP)
    assert run.scheduled_for == datetime(2026, 11, 24, 2, 30, tzinfo=UTC)


def test_new_schedule_with_no_fire_time_since_creation_waits(clock, daemon, make_schedule):
    schedule = thread_schedule(make_schedule, cron="30 2 * * *", created_at=T0)
    clock(T0 + timedelta(hours=1))
    sync(daemon, full=True)
    settle(daemon)
    assert not Run.objects.filter(schedule=schedule).exists()


def test_catch_up_off_runs_nothing_and_logs_the_count(clock, daemon, make_schedule, caplog):
    schedule = thread_schedule(make_schedule, interval=600, catch_up=False)
    clock(T0 + timedelta(hours=1, seconds=5))
    with caplog.at_level(logging.INFO, logger="scheduler"):
        sync(daemon, full=True)
        settle(daemon)
    assert not Run.objects.filter(schedule=schedule).exists()
    assert "missed 6 fire time(s); catch-up is off" in caplog.text


def test_missed_fire_time_outside_the_window_is_not_caught_up(clock, make_schedule):
    schedule = thread_schedule(make_schedule, interval=3600, catch_up_window=600)
    assert decide(schedule, None, T0 + timedelta(hours=1, minutes=5)).fire_time is not None
    assert decide(schedule, None, T0 + timedelta(hours=1, minutes=11)).fire_time is None


def test_sync_schedules_jobs_for_enabled_schedules_only(clock, daemon, make_schedule):
    enabled = thread_schedule(make_schedule, interval=60)
    disabled = thread_schedule(make_schedule, interval=60, enabled=False)
    sync(daemon, full=True)
    jobs = daemon.jobs.next_fire_times()
    assert set(jobs) == {enabled.pk}
    assert jobs[enabled.pk] == T0 + timedelta(seconds=60)
    assert disabled.pk not in jobs


def test_sync_gives_each_job_its_first_fire_time_after_now_or_after_its_pause(
    clock, daemon, make_schedule
):
    clock(T0 + timedelta(minutes=20))
    daily = thread_schedule(make_schedule, cron="10 1 * * *")
    hourly = thread_schedule(make_schedule, cron="30 * * * *")
    run_recently = thread_schedule(make_schedule, cron="*/5 * * * *")
    Run.objects.create(
        schedule=run_recently,
        command="say",
        reason=Reason.SCHEDULED,
        status=Status.SUCCEEDED,
        scheduled_for=T0 + timedelta(minutes=20),
    )
    paused = thread_schedule(make_schedule, cron="*/5 * * * *")
    paused.pause(until=T0 + timedelta(hours=2, minutes=2), reason="maintenance", by="ops")
    created_later = thread_schedule(
        make_schedule, cron="0 * * * *", created_at=T0 + timedelta(hours=3)
    )
    stopped = thread_schedule(make_schedule, cron="0 * * * *")
    stopped.pause(until=None, reason="retired", by="ops")
    sync(daemon, full=True)
    assert daemon.jobs.next_fire_times() == {
        daily.pk: datetime(2026, 11, 25, 1, 10, tzinfo=UTC),
        hourly.pk: T0 + timedelta(minutes=30),
        run_recently.pk: T0 + timedelta(minutes=25),
        paused.pk: T0 + timedelta(hours=2, minutes=5),
        created_later.pk: T0 + timedelta(hours=1),
    }


def test_sync_follows_edits_and_removals(clock, daemon, make_schedule):
    schedule = thread_schedule(make_schedule, interval=60)
    sync(daemon)
    clock(T0 + timedelta(seconds=1))
    schedule.interval = 300
    schedule.save()
    sync(daemon)
    assert list(daemon.jobs.next_fire_times().values()) == [T0 + timedelta(seconds=300)]
    schedule.delete()
    sync(daemon)
    assert daemon.jobs.next_fire_times() == {}


def test_a_sync_after_an_edit_reads_only_the_rows_edited_or_added(clock, daemon, make_schedule):
    kept, edited = (thread_schedule(make_schedule, interval=60) for _ in range(2))
    sync(daemon)
    clock(T0 + timedelta(seconds=1))
    edited.interval = 300
    edited.save()
    added = thread_schedule(make_schedule, interval=120)
    with CaptureQueriesContext(connection) as queries:
        sync(daemon)
    read = next(
        q["sql"] for q in queries if "scheduler_schedule" in q["sql"] and "cron" in q["sql"]
    )
    assert "updated_at" in read.split("WHERE", 1)[1]  # the edited and the new, not all
    jobs = daemon.jobs.next_fire_times()
    assert jobs == {
        kept.pk: T0 + timedelta(seconds=60),
        edited.pk: T0 + timedelta(seconds=300),
        added.pk: T0 + timedelta(seconds=120),
    }


def test_a_schedule_deleted_while_another_is_added_is_still_removed(clock, daemon, make_schedule):
    gone = thread_schedule(make_schedule, interval=60)
    sync(daemon)
    gone.delete()
    added = thread_schedule(make_schedule, interval=60)  # the same count as before
    sync(daemon)
    assert set(daemon.jobs.next_fire_times()) == {added.pk}


def test_a_schedule_disabled_by_save_loses_its_job_and_alerts_are_followed(daemon, make_schedule):
    schedule = thread_schedule(make_schedule, interval=60)
    sync(daemon)
    assert not daemon.planner.sets_alerts
    schedule.late_after = 60
    schedule.save()
    sync(daemon)
    assert daemon.planner.sets_alerts
    schedule.enabled = False
    schedule.save()
    sync(daemon)
    assert daemon.jobs.next_fire_times() == {}
    assert not daemon.planner.sets_alerts


@pytest.mark.parametrize(
    ("late", "catch_up", "expected"),
    [
        (timedelta(seconds=0.5), False, [Reason.SCHEDULED]),
        (timedelta(minutes=10), True, [Reason.CATCH_UP]),
        (timedelta(minutes=10), False, []),
    ],
)
def test_a_fire_handed_over_late_follows_the_catch_up_rules(
    clock, daemon, make_schedule, late, catch_up, expected
):
    schedule = thread_schedule(make_schedule, interval=60, catch_up=catch_up)
    fire = T0 + timedelta(minutes=30)
    clock(fire + late)
    daemon.launcher.fire_due([(schedule.pk, [fire], timezone.now())])
    settle(daemon)
    assert [run.reason for run in Run.objects.filter(schedule=schedule)] == expected


def test_several_due_fire_times_at_once_are_one_catch_up_run(clock, daemon, make_schedule):
    schedule = thread_schedule(make_schedule, interval=60)
    clock(T0 + timedelta(minutes=5, seconds=1))
    fires = [T0 + timedelta(minutes=minute) for minute in (3, 4, 5)]
    daemon.launcher.fire_due([(schedule.pk, fires, timezone.now())])
    settle(daemon)
    [run] = Run.objects.filter(schedule=schedule)
    assert (run.reason, run.scheduled_for) == (Reason.CATCH_UP, fires[-1])


@contextmanager
def database_away() -> Iterator[None]:
    """Make new connections fail, as in an outage; open ones (this thread's) stay usable."""
    settings = connection.settings_dict
    saved = dict(settings)
    if connection.vendor == "sqlite":
        settings["NAME"] = "/nonexistent/outage.sqlite3"
    else:
        settings["HOST"], settings["PORT"] = "127.0.0.1", "1"
    try:
        yield
    finally:
        settings.update(saved)


def in_new_thread(func, *args, **kwargs):
    """Call ``func`` in a thread of its own (a new connection); return what it returned."""
    outcome = []

    def call() -> None:
        try:
            outcome.append(func(*args, **kwargs))
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    return outcome[0] if outcome else None


@pytest.fixture
def live_daemon(daemon):
    daemon.attach(Heartbeat.objects.create(host="here", pid=1))
    return daemon


def test_a_result_not_recorded_within_the_retry_is_recorded_when_the_database_is_back(
    live_daemon, make_schedule, monkeypatch
):
    monkeypatch.setattr("scheduler.execution.PERSIST_RETRY_FOR", 0.0)
    schedule = make_schedule(executor="thread", overlap="skip")
    run = Run.claim(schedule.pk, T0, Reason.SCHEDULED, owner=live_daemon.owner)
    with database_away():
        in_new_thread(runner.execute_run, run)
    run.refresh_from_db()
    assert run.status == Status.RUNNING

    [recorded] = live_daemon.upkeep.end_lost_runs()
    assert recorded.pk == run.pk
    run.refresh_from_db()
    assert (run.status, run.exit_code) == (Status.SUCCEEDED, 0)
    assert "stdout hello 0" in run.stdout


def test_a_run_this_daemon_no_longer_holds_ends_interrupted(live_daemon, make_schedule):
    schedule = make_schedule(executor="thread")
    run = Run.claim(schedule.pk, T0, Reason.SCHEDULED, owner=live_daemon.owner)
    assert live_daemon.upkeep.end_lost_runs() == []  # perhaps claimed a moment ago
    [ended] = live_daemon.upkeep.end_lost_runs()
    assert ended.pk == run.pk
    assert ended.status == Status.INTERRUPTED
    assert "could not record" in ended.stderr


def test_a_catch_up_that_meets_a_database_outage_runs_once_it_is_back(
    clock, live_daemon, make_schedule
):
    schedule = thread_schedule(make_schedule, interval=60)
    sync(live_daemon, full=True)
    clock(T0 + timedelta(minutes=5, seconds=1))
    with database_away():
        in_new_thread(call, live_daemon.launcher.run_catch_up, schedule.pk)
    assert not Run.objects.filter(schedule=schedule).exists()

    sync(live_daemon)
    settle(live_daemon)
    [run] = Run.objects.filter(schedule=schedule)
    assert (run.reason, run.scheduled_for) == (Reason.CATCH_UP, T0 + timedelta(minutes=5))


def test_runs_whose_mail_was_lost_are_mailed_later_once(live_daemon, make_schedule, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    schedule = make_schedule(executor="thread")
    run = Run.claim(schedule.pk, T0, Reason.SCHEDULED, owner=Owner("gone", 2))
    Run.objects.filter(pk=run.pk).interrupt("the scheduler exited")  # its mail was never sent
    succeeded = Run.claim(
        schedule.pk, T0 + timedelta(minutes=1), Reason.SCHEDULED, owner=Owner("gone", 2)
    )
    Run.objects.filter(pk=succeeded.pk).update(status=Status.SUCCEEDED)
    Run.objects.update(finished_at=timezone.now() - timedelta(minutes=5))

    live_daemon.upkeep.mail_missed()
    live_daemon.upkeep.mail_missed()
    assert [message.subject for message in mail.outbox] == [
        f"[Django] {schedule.name}: interrupted (exit code None)"
    ]


def test_shutdown_with_work_still_waiting_for_a_thread_does_not_hang():
    daemon = SchedulerDaemon(poll_interval=0.1)
    daemon.jobs.start(paused=True)
    daemon.attach(Heartbeat.objects.create(host="here", pid=1))
    release = threading.Event()
    for _ in range(daemon.pool.max_workers + 3):  # the last ones wait for a thread
        daemon.pool.submit(release.wait, 10)
    stopping = threading.Thread(target=daemon.shutdown)
    stopping.start()
    time.sleep(0.5)
    release.set()
    stopping.join(10)
    assert not stopping.is_alive()
    daemon.heartbeat.refresh_from_db()
    assert daemon.heartbeat.stopped_at is not None


def test_start_up_reads_the_schedules_again_when_the_first_read_fails(daemon, make_schedule):
    from django.db import OperationalError, connection

    make_schedule(interval=60)
    make_schedule(interval=120)
    failures = iter([True])

    def first_read_fails(execute, sql, params, many, context):
        if "scheduler_schedule" in sql and next(failures, False):
            raise OperationalError("database is locked")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(first_read_fails):
        daemon.plan_all()
    assert len(daemon.planner.planned) == 2


@pytest.fixture
def idle_daemon(live_daemon, make_schedule, settings):
    """A daemon that beat, planned one hourly schedule, and has nothing due for an hour."""
    settings.SCHEDULER = {**settings.SCHEDULER, "HEARTBEAT_INTERVAL": 3600}
    thread_schedule(make_schedule, interval=3600)
    live_daemon.tick(T0)
    live_daemon.drain()
    return live_daemon


def test_an_idle_tick_costs_two_queries(idle_daemon, django_assert_num_queries):
    # Nothing due, nothing changed: the schedules' fingerprint and the queued runs.
    with django_assert_num_queries(2):
        idle_daemon.tick(T0 + timedelta(seconds=1))


def test_a_tick_with_nothing_changed_or_due_sends_no_statement(
    idle_daemon, django_assert_num_queries
):
    with django_assert_num_queries(0):
        idle_daemon.tick(T0 + timedelta(seconds=1), changed=set())


def test_a_tick_told_of_queued_runs_looks_only_at_them(idle_daemon, django_assert_num_queries):
    with django_assert_num_queries(1):
        idle_daemon.tick(T0 + timedelta(seconds=1), changed={RUNS})


def test_a_retry_due_later_is_started_at_its_time_without_a_change(
    clock, live_daemon, make_schedule, settings
):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEARTBEAT_INTERVAL": 3600}
    schedule = thread_schedule(make_schedule, interval=3600)
    live_daemon.tick(T0)
    Run.objects.create(
        schedule=schedule,
        command=schedule.command,
        args=schedule.args,
        reason=Reason.RETRY,
        status=Status.QUEUED,
        scheduled_for=T0,
        run_after=T0 + timedelta(seconds=30),
        executor="thread",
    )
    clock(T0 + timedelta(seconds=1))
    live_daemon.tick(T0 + timedelta(seconds=1), changed={RUNS})
    assert 28 <= live_daemon.idle_for() <= 29
    live_daemon.tick(T0 + timedelta(seconds=29), changed=set())
    assert Run.objects.get(reason=Reason.RETRY).status == Status.QUEUED
    live_daemon.tick(T0 + timedelta(seconds=31), changed=set())
    live_daemon.drain()
    assert Run.objects.get(reason=Reason.RETRY).status == Status.SUCCEEDED


@contextmanager
def running(daemon: SchedulerDaemon) -> Iterator[threading.Thread]:
    """Run ``daemon`` in a thread until it has started; stop it at the latest on the way out."""
    runner_thread = threading.Thread(target=daemon.run)
    runner_thread.start()
    try:
        assert wait_for(lambda: daemon.heartbeat is not None and daemon.planner.synced, 10)
        yield runner_thread
    finally:
        daemon.request_stop(immediate=True)
        runner_thread.join(10)


def test_a_stop_request_ends_the_wait_for_changes_at_once(make_schedule, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEARTBEAT_INTERVAL": 3600, "EXECUTOR": "thread"}
    daemon = SchedulerDaemon(poll_interval=3600)
    with running(daemon) as runner_thread:
        time.sleep(0.2)
        began = time.monotonic()
        daemon.request_stop()
        runner_thread.join(10)
        assert not runner_thread.is_alive()
        assert time.monotonic() - began < 5


def test_a_daemon_that_stops_stops_its_fork_server_and_reaps_it(make_schedule, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "HEARTBEAT_INTERVAL": 3600, "EXECUTOR": "process"}
    daemon = SchedulerDaemon(poll_interval=3600)
    with running(daemon) as runner_thread:
        (server,) = wait_for(
            lambda: [
                pid
                for pid in children(os.getpid())
                if pid_running(pid) and process_name(pid) == forkserver.NAME
            ],
            10,
        )
        daemon.request_stop()
        runner_thread.join(10)
    with pytest.raises(ChildProcessError):  # waited for: not even a zombie is left
        os.waitpid(server, os.WNOHANG)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="notifications name the rows")
def test_a_notified_edit_reads_only_the_rows_named_even_when_a_full_read_is_due(
    idle_daemon, make_schedule, clock
):
    idle_daemon.changes.start()
    try:
        clock(T0 + timedelta(hours=1))  # RESYNC_INTERVAL long past
        made = in_other_connection(lambda: thread_schedule(make_schedule, interval=600))
        changed = wait_for(lambda: idle_daemon.changes.wait(0.2), 5)
        with CaptureQueriesContext(connection) as queries:
            idle_daemon.tick(T0 + timedelta(hours=1), changed=changed)
        full_reads = [
            q["sql"] for q in queries if 'WHERE "scheduler_schedule"."enabled" ORDER BY' in q["sql"]
        ]
        assert not full_reads  # only the row named, through the incremental read
        assert made.pk in idle_daemon.jobs.next_fire_times()
    finally:
        idle_daemon.changes.close()


def test_daemons_divide_the_due_jobs_and_take_over_from_one_that_stops_firing():
    now = timezone.now()
    plans = [
        JobPlan(pk, f"s{pk}", Timing(interval=60, anchor=now), now - timedelta(seconds=1))
        for pk in range(1, 7)
    ]
    daemons = [SchedulerDaemon(poll_interval=0.1) for _ in range(2)]
    for index, daemon in enumerate(daemons):
        daemon.jobs.start(paused=True)
        daemon.attach(Heartbeat.start(host="here", pid=index + 1))
        daemon.upkeep.shares.overlap = 0  # each share at once
        daemon.upkeep.start_firing()
    first, second = daemons
    first.jobs.put(plans)

    def due(daemon: SchedulerDaemon) -> list[int]:
        return sorted(job.args[0] for job in daemon.jobs.store.get_due_jobs(timezone.now()))

    try:
        for daemon in daemons:
            daemon.tick()
        assert (due(first), due(second)) == ([2, 4, 6], [1, 3, 5])
        second.heartbeat.stop_firing()
        first.tick(changed={DAEMONS})
        assert due(first) == [1, 2, 3, 4, 5, 6]
    finally:
        for daemon in daemons:
            daemon.jobs.shutdown()
            daemon.pool.shutdown(wait=True)


def test_a_schedule_gained_from_a_daemon_that_stopped_catches_up_what_it_dropped(
    clock, daemon, make_schedule
):
    kept, gained = (thread_schedule(make_schedule, interval=60) for _ in range(2))
    sync(daemon)
    share = Share(kept.pk % 2, 2)
    daemon.divide(frozenset({share}), share, EVERYTHING)
    # The other daemon fired (or stopped before it claimed) the fire time of T0 + 1 min.
    clock(T0 + timedelta(minutes=1, seconds=30))
    daemon.divide(frozenset({EVERYTHING}), EVERYTHING, share)
    sync(daemon)  # the next tick's, woken by the gain
    settle(daemon)
    assert [run.scheduled_for for run in ran(gained, Reason.CATCH_UP)] == [
        T0 + timedelta(minutes=1)
    ]
    assert ran(kept, Reason.CATCH_UP) == []  # its own fire times are APScheduler's
