"""The ``tasks`` executor: hand-over to a Django Tasks backend, and the worker's side."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from scheduler.compat import tasks_package
from scheduler.daemon import SchedulerDaemon
from scheduler.in_flight import InFlightPool
from scheduler.models import Heartbeat, Reason, Run, Status
from scheduler.owners import Owner
from scheduler.runner import fail_lost_tasks, run_schedule
from scheduler.signals import run_finished
from scheduler.tasks import hand_over, run_task
from tests.conftest import database_url
from tests.manage_py import ROOT

# The signal the backend sends: Django's own on 6.0, the backport's on 5.2.
task_enqueued = importlib.import_module(f"{tasks_package()}.signals").task_enqueued

FIRE = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
RQ_DOWN = {"TASKS_BACKEND": "rq"}  # tests/settings.py points RQ at a port nobody serves


@pytest.fixture
def tasks_schedule(make_schedule):
    return make_schedule(executor="tasks", args=["via a worker"])


@pytest.fixture
def handed_over(tasks_schedule) -> Run:
    """A fire time of a ``tasks`` schedule, claimed and enqueued on the database backend."""
    return run_schedule(tasks_schedule.pk, FIRE, Reason.SCHEDULED)


def test_a_fire_time_is_claimed_as_queued_and_enqueued_on_the_backend(handed_over):
    run = Run.objects.get(pk=handed_over.pk)
    assert run.status == Status.QUEUED
    assert run.executor == "tasks"
    assert (run.host, run.pid, run.started_at) == ("", None, None)
    assert run.enqueued_at is not None
    task = DBTaskResult.objects.get(pk=run.task_id)
    assert task.task_path == "scheduler.tasks.run_task"
    assert task.args_kwargs == {"args": [run.pk], "kwargs": {}}


def test_the_worker_runs_it_under_its_own_heartbeat(handed_over):
    assert run_task.call(handed_over.pk) == Status.SUCCEEDED

    run = Run.objects.get(pk=handed_over.pk)
    assert run.status == Status.SUCCEEDED
    assert "stdout via a worker 0" in run.stdout
    assert run.pid == os.getpid()
    heartbeat = Heartbeat.objects.get(pk=run.heartbeat_id)
    assert (heartbeat.kind, heartbeat.pid) == ("worker", os.getpid())
    assert heartbeat.stopped_at is not None


def test_a_task_delivered_twice_starts_the_run_once(handed_over):
    assert run_task.call(handed_over.pk) == Status.SUCCEEDED
    assert run_task.call(handed_over.pk) == "not started"
    assert Run.objects.get().status == Status.SUCCEEDED


@override_settings(SCHEDULER={"TASKS_MAX_AGE": 1})
def test_a_worker_stops_a_command_without_timeout_at_the_maximum_age(make_schedule):
    schedule = make_schedule(executor="tasks", command="sleep_for", args=["30"])
    run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    assert run_task.call(run.pk) == Status.TIMED_OUT


def test_a_worker_takes_a_timeout_like_the_process_executor(make_schedule):
    schedule = make_schedule(executor="tasks", command="sleep_for", args=["30"], timeout=1)
    run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)

    assert run_task.call(run.pk) == Status.TIMED_OUT
    run.refresh_from_db()
    assert "sleeping 30" in run.stdout
    assert "Stopped after the 1 s timeout" in run.stderr


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_real_db_worker_runs_the_handed_over_run(tasks_schedule):
    run = run_schedule(tasks_schedule.pk, FIRE, Reason.SCHEDULED)
    worker = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-reload", "--no-startup-delay"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr

    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert run.exit_code == 0
    assert "stdout via a worker 0" in run.stdout
    assert run.pid != os.getpid()
    assert DBTaskResult.objects.get(pk=run.task_id).status == "SUCCESSFUL"


@override_settings(SCHEDULER=RQ_DOWN)
def test_a_backend_that_is_down_fails_the_run_with_the_reason(tasks_schedule):
    ended = []
    run_finished.connect(lambda run, **kwargs: ended.append(run.pk), weak=False, dispatch_uid="t")
    try:
        run = run_schedule(tasks_schedule.pk, FIRE, Reason.SCHEDULED)
    finally:
        run_finished.disconnect(dispatch_uid="t")

    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "Not queued: the task backend 'rq' (queue 'default') refused" in run.stderr
    assert "ConnectionError" in run.stderr
    assert run.finished_at is not None
    assert ended == [run.pk]


def test_a_new_fire_time_is_skipped_while_a_run_waits_in_the_queue(handed_over, tasks_schedule):
    later = run_schedule(tasks_schedule.pk, FIRE.replace(hour=4), Reason.SCHEDULED)
    assert later.status == Status.SKIPPED
    assert DBTaskResult.objects.count() == 1


def test_a_run_is_handed_over_once_however_many_daemons_try(handed_over):
    hand_over(Run.objects.get(pk=handed_over.pk))
    assert DBTaskResult.objects.count() == 1


def test_a_hand_over_whose_daemon_died_mid_enqueue_is_taken_again_later(
    daemon, tasks_schedule, time_machine
):
    time_machine.move_to(FIRE, tick=False)
    run = Run.claim(tasks_schedule.pk, FIRE, Reason.SCHEDULED, owner=Owner("gone", 1))
    assert run.claim_enqueue()  # ... and the daemon died before the task was enqueued
    time_machine.move_to(FIRE + timedelta(seconds=10), tick=False)
    daemon.launcher.start_queued(timezone.now())
    assert DBTaskResult.objects.count() == 0  # it may still be enqueueing

    time_machine.move_to(FIRE + timedelta(seconds=31), tick=False)
    daemon.launcher.start_queued(timezone.now())
    run.refresh_from_db()
    assert str(DBTaskResult.objects.get().pk) == run.task_id


def test_a_failed_enqueue_leaves_a_run_a_worker_already_started_to_the_worker(handed_over):
    second = Run.claim_manual(handed_over.schedule)

    def started_then_failed(sender, task_result, **kwargs):
        Run.objects.get(pk=task_result.args[0]).start(owner=Owner("worker", 7))
        raise RuntimeError("the backend failed after storing the task")

    task_enqueued.connect(started_then_failed, dispatch_uid="started_then_failed")
    try:
        hand_over(second)
    finally:
        task_enqueued.disconnect(dispatch_uid="started_then_failed")
    second.refresh_from_db()
    assert (second.status, second.pid, second.stderr) == (Status.RUNNING, 7, "")


def test_a_misconfigured_tasks_executor_fails_the_run_instead_of_leaving_it_queued(
    tasks_schedule, monkeypatch
):
    monkeypatch.delitem(sys.modules, "scheduler.tasks")  # imported afresh, with the bad alias
    with override_settings(SCHEDULER={"TASKS_BACKEND": "nowhere"}):
        run = run_schedule(tasks_schedule.pk, FIRE, Reason.SCHEDULED)
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "Not queued: the tasks executor is not usable here" in run.stderr
    assert "nowhere" in run.stderr


@pytest.mark.parametrize(
    ("task_fate", "status", "recorded"),
    [
        ("FAILED", Status.FAILED, "ended FAILED without starting it (builtins.RuntimeError)"),
        ("deleted", Status.FAILED, "no longer has its task"),
        ("READY", Status.QUEUED, ""),
        ("RUNNING", Status.QUEUED, ""),
    ],
)
def test_a_run_whose_task_ended_or_vanished_unstarted_is_failed_not_queued_for_ever(
    handed_over, task_fate, status, recorded
):
    task = DBTaskResult.objects.get(pk=handed_over.task_id)
    if task_fate == "deleted":
        task.delete()
    elif task_fate == "FAILED":
        task.claim("worker-1")
        task.set_failed(RuntimeError("database gone before the run started"))
    elif task_fate == "RUNNING":
        task.claim("worker-1")

    lost = fail_lost_tasks(handed_over.enqueued_at + timedelta(seconds=1))
    handed_over.refresh_from_db()
    assert handed_over.status == status
    assert recorded in handed_over.stderr
    assert [run.pk for run in lost] == ([handed_over.pk] if status == Status.FAILED else [])


def test_a_backend_that_cannot_be_asked_leaves_queued_runs_queued(handed_over):
    with override_settings(SCHEDULER=RQ_DOWN):
        assert fail_lost_tasks(handed_over.enqueued_at + timedelta(seconds=1)) == []
    handed_over.refresh_from_db()
    assert handed_over.status == Status.QUEUED


def test_a_recently_enqueued_run_is_not_looked_up(handed_over):
    DBTaskResult.objects.all().delete()
    assert fail_lost_tasks(handed_over.enqueued_at) == []


@pytest.fixture
def daemon() -> SchedulerDaemon:
    """A daemon whose loop steps run their work inline, in the test's transaction."""
    return SchedulerDaemon(poll_interval=0.1, pool=InFlightPool(1, inline=True))


def test_run_now_of_a_tasks_schedule_goes_to_the_backend_through_the_daemon(daemon, tasks_schedule):
    run = Run.claim_manual(tasks_schedule)
    daemon.launcher.start_queued(timezone.now())
    daemon.launcher.start_queued(timezone.now())  # next tick: handed over already, no 2nd task

    run.refresh_from_db()
    assert run.status == Status.QUEUED
    assert DBTaskResult.objects.get().args_kwargs["args"] == [run.pk]
    assert str(DBTaskResult.objects.get().pk) == run.task_id


def test_a_terminal_run_of_a_tasks_schedule_runs_right_here(tasks_schedule):
    run = Run.claim_manual(tasks_schedule, owner=Owner("cli-host", 9))
    assert (run.status, run.executor, run.host) == (Status.RUNNING, "process", "cli-host")


def test_the_run_task_is_bound_to_the_backend_configured_when_it_is_asked_for():
    from scheduler import tasks

    with override_settings(SCHEDULER={"TASKS_BACKEND": "rq", "TASKS_QUEUE": "default"}):
        assert (tasks.run_task.backend, tasks.run_task.module_path) == (
            "rq",
            "scheduler.tasks.run_task",
        )
    assert tasks.run_task.backend == "default"


IMPORT_WITHOUT_A_DEFAULT_BACKEND = """
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django_apscheduler", "scheduler"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    TASKS={"only": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
)
django.setup()
import scheduler.runner
import scheduler.tasks
print("imported")
"""


def test_importing_the_runner_and_tasks_modules_reads_no_task_settings():
    # No "default" task backend: binding the task at import would fail here.
    imported = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT_A_DEFAULT_BACKEND],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.stdout.strip() == "imported", imported.stderr


def test_a_command_run_by_a_worker_learns_its_run(make_schedule):
    schedule = make_schedule(name="nightly", executor="tasks", command="show_run", args=[])
    run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    assert run_task.call(run.pk) == Status.SUCCEEDED
    run.refresh_from_db()
    assert f"run: {run.pk} 2026-11-24T03:00:00+00:00 scheduled nightly\n" in run.stdout
