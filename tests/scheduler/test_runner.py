from __future__ import annotations

import random
import threading
from datetime import UTC, datetime

import pytest
from django.db import connection

from scheduler.models import Reason, Run, Schedule, Status
from scheduler.owners import Owner
from scheduler.runner import execute_run, run_queued, run_schedule
from scheduler.signals import run_finished
from tests.conftest import wait_for

FIRE = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def test_a_fire_time_runs_and_is_recorded(make_schedule):
    schedule = make_schedule(executor="thread")
    run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    run.refresh_from_db()
    assert (run.status, run.exit_code, run.reason) == (Status.SUCCEEDED, 0, Reason.SCHEDULED)
    assert run.scheduled_for == FIRE
    assert "stdout hello 0" in run.stdout
    assert run.started_at <= run.finished_at


def test_a_fire_time_already_taken_is_not_run_again(make_schedule):
    schedule = make_schedule(executor="thread")
    run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    assert run_schedule(schedule.pk, FIRE, Reason.CATCH_UP) is None
    assert Run.objects.count() == 1


def test_jitter_delays_the_start_but_not_the_fire_time(make_schedule):
    schedule = make_schedule(executor="thread", jitter=1)
    random.seed(7)
    expected_delay = random.Random(7).uniform(0, 1)
    run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    assert run.scheduled_for == FIRE
    delay = (run.started_at - run.created_at).total_seconds()
    assert expected_delay - 0.05 <= delay <= expected_delay + 0.5


def test_shutdown_during_jitter_interrupts_without_running(make_schedule):
    schedule = make_schedule(executor="thread", jitter=30)
    stop = threading.Event()
    stop.set()
    run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED, stop=stop)
    assert run.status == Status.INTERRUPTED
    assert run.stdout == ""


def test_a_row_written_behind_admins_back_with_a_forbidden_command_is_not_run(make_schedule):
    schedule = make_schedule()
    Schedule.objects.filter(pk=schedule.pk).update(command="flush", args=["--no-input"])
    run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "not allowed" in run.stderr
    assert run.exit_code is None


def test_a_queued_manual_run_is_started_once(make_schedule):
    run = Run.claim_manual(make_schedule(executor="thread"))
    finished = run_queued(run.pk)
    assert finished.status == Status.SUCCEEDED
    assert run_queued(run.pk) is None


@pytest.mark.django_db(transaction=True)
def test_output_of_a_process_run_is_stored_while_it_runs(make_schedule, settings):
    settings.SCHEDULER = {"OUTPUT_FLUSH_INTERVAL": 0.2}
    schedule = make_schedule(args=["live", "--repeat", "30", "--pause", "0.1"])
    worker = threading.Thread(target=run_schedule, args=(schedule.pk, FIRE, Reason.SCHEDULED))
    worker.start()
    try:
        partial = wait_for(
            lambda: Run.objects.filter(status=Status.RUNNING, stdout__contains="live 3").first(),
            5,
        )
        assert "live 29" not in partial.stdout
    finally:
        worker.join()
    run = Run.objects.get()
    assert run.status == Status.SUCCEEDED
    assert "stdout live 29" in run.stdout


def test_echo_receives_the_output_as_it_arrives(make_schedule):
    run = Run.claim_manual(make_schedule(args=["echoed"]))
    run.start(owner=Owner.this_process())
    chunks = []
    execute_run(run, echo=lambda stream, text: chunks.append((stream, text)))
    assert "".join(text for stream, text in chunks if stream == "stdout") == run.stdout
    assert "".join(text for stream, text in chunks if stream == "stderr") == run.stderr


@pytest.mark.parametrize(
    ("broken", "error", "status", "recorded"),
    [
        # A bug in the scheduler's own code around the command.
        ("ping", RuntimeError("the scheduler broke"), Status.FAILED, "RuntimeError: the"),
        # What a task worker's second SIGTERM raises while it waits for the command.
        ("execute", SystemExit(1), Status.INTERRUPTED, "told to exit"),
    ],
    ids=["scheduler-bug", "process-exiting"],
)
def test_a_run_broken_outside_the_command_still_ends_truthfully(
    make_schedule, monkeypatch, broken, error, status, recorded
):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(f"scheduler.execution.{broken}", fail)
    schedule = make_schedule(executor="thread")
    with pytest.raises(type(error)):
        run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    run = Run.objects.get()
    assert run.status == status
    assert recorded in run.stderr


def test_a_terminal_run_is_started_directly_so_no_daemon_takes_it(make_schedule):
    run = Run.claim_manual(make_schedule(), owner=Owner("cli-host", 9))
    assert (run.status, run.reason, run.host) == (Status.RUNNING, Reason.MANUAL, "cli-host")


def test_a_run_ended_by_another_process_keeps_that_status_and_is_not_notified_again(
    make_schedule,
):
    schedule = make_schedule(executor="thread")
    run = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, owner=Owner.this_process())
    [other] = Run.objects.filter(pk=run.pk).interrupt("taken for dead")
    other.claim_notification()
    notified = []
    run_finished.connect(
        lambda sender, run, **kwargs: notified.append(run.pk), weak=False, dispatch_uid="seen"
    )
    try:
        ended = execute_run(run)
    finally:
        run_finished.disconnect(dispatch_uid="seen")
    assert ended.status == Status.INTERRUPTED
    run.refresh_from_db()
    assert run.status == Status.INTERRUPTED
    assert "taken for dead" in run.stderr
    assert notified == []


@pytest.mark.django_db(transaction=True)
def test_a_process_run_ended_by_another_process_has_its_command_stopped(make_schedule, settings):
    settings.SCHEDULER = {"HEARTBEAT_INTERVAL": 0.2, "KILL_GRACE": 1.0}
    schedule = make_schedule(command="sleep_for", args=["30"])
    run = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, owner=Owner.this_process())

    def execute() -> None:
        try:
            execute_run(run)
        finally:
            connection.close()  # this thread's own

    worker = threading.Thread(target=execute)
    worker.start()
    try:
        wait_for(lambda: Run.objects.filter(pk=run.pk, stdout__contains="sleeping").exists(), 10)
        Run.objects.filter(pk=run.pk).interrupt("taken for dead")
        worker.join(8)
        assert not worker.is_alive()
    finally:
        worker.join()
    run.refresh_from_db()
    assert run.status == Status.INTERRUPTED
    assert "woke up" not in run.stdout


def test_a_fire_time_in_its_jitter_delay_when_the_daemon_stops_is_released(make_schedule):
    schedule = make_schedule(executor="thread", jitter=1)
    stopping = threading.Event()
    stopping.set()
    run_schedule(schedule.pk, FIRE, Reason.SCHEDULED, stop=threading.Event(), stopping=stopping)
    assert not Run.objects.filter(schedule=schedule).exists()  # unclaimed: caught up later
    assert run_schedule(schedule.pk, FIRE, Reason.CATCH_UP).status == Status.SUCCEEDED


def test_a_queued_manual_run_in_its_jitter_delay_when_the_daemon_stops_stays_queued(
    make_schedule,
):
    queued = Run.claim_manual(make_schedule(executor="thread", jitter=1))
    stopping = threading.Event()
    stopping.set()
    run_queued(queued.pk, stopping=stopping)
    queued.refresh_from_db()
    assert (queued.status, queued.heartbeat_id, queued.started_at) == (Status.QUEUED, None, None)
    assert run_queued(queued.pk).status == Status.SUCCEEDED


def test_a_run_keeps_the_timeout_it_was_claimed_with(make_schedule):
    schedule = make_schedule(command="sleep_for", args=["1.5"], timeout=30)
    run = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, owner=Owner.this_process())
    Schedule.objects.filter(pk=schedule.pk).update(timeout=1)
    run = Run.objects.select_related("schedule").get(pk=run.pk)  # as a worker reads it
    assert execute_run(run).status == Status.SUCCEEDED


# The same on SQLite and PostgreSQL. Claim: a savepoint (the atomic block, nested in the
# test's transaction), lock the schedule row, look for a run still going, insert the run,
# release the savepoint; finish: one conditional update.
CLAIM_AND_FINISH_QUERIES = 6


def test_a_claim_plus_finish_takes_a_fixed_number_of_queries(
    make_schedule, django_assert_num_queries
):
    schedule = make_schedule(executor="thread")
    with django_assert_num_queries(CLAIM_AND_FINISH_QUERIES):
        run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    assert run.status == Status.SUCCEEDED


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_a_command_learns_the_run_it_executes_for(make_schedule, executor):
    schedule = make_schedule(name="nightly", executor=executor, command="show_run", args=[])
    run = run_schedule(schedule.pk, FIRE, Reason.CATCH_UP)
    run.refresh_from_db()
    assert f"run: {run.pk} 2026-11-24T03:00:00+00:00 catch_up nightly\n" in run.stdout
