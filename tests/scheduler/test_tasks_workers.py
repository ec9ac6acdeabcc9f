"""End to end: one ``runscheduler`` with the ``tasks`` executor and real task workers.

The workers are the backends' own: ``db_worker`` of django-tasks-db, and ``rqworker`` of
django-rq on a Redis server from Debian's package (tests/redis_server.py).
"""

from __future__ import annotations

import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from scheduler.models import Heartbeat, Run, Status
from tests.conftest import ManagePy, assert_each_fire_time_once, managed, wait_for
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUICK = {"EXECUTOR": "tasks", "HEARTBEAT_INTERVAL": 1.0, "HEARTBEAT_TIMEOUT": 5.0}

WORKERS = {
    "database": {
        "settings": QUICK,
        "argv": ["db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.1"],
        "ready": "Starting worker",
    },
    # Each run already gets a child process of its own, so RQ's fork per job would only
    # add a fork-server start per run; SimpleWorker runs the task in the worker itself.
    "rq": {
        "settings": {**QUICK, "TASKS_BACKEND": "rq"},
        "argv": [
            "rqworker",
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--job-class",
            "django_tasks_rq.Job",
            "default",
        ],
        "ready": "Listening on",
    },
}
WORKERS["rq-fork"] = {
    **WORKERS["rq"],
    "argv": ["rqworker", "--job-class", "django_tasks_rq.Job", "default"],
}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = RedisServer()
    yield server.url
    server.stop()


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the acceptance runs are on PostgreSQL (the suite's second pass)")


@pytest.fixture
def backend_env(request) -> Callable[[str], dict[str, str]]:
    """What the daemon and the workers of a backend need in their environment."""

    def env(backend: str) -> dict[str, str]:
        if backend.startswith("rq"):
            return {"SCHEDULER_TEST_REDIS_URL": request.getfixturevalue("redis_url")}
        return {}

    return env


@pytest.fixture
def start_workers(backend_env, transactional_db, tmp_path) -> Iterator[Callable[..., list]]:
    """Start ``count`` real workers of a backend in ``WORKERS``; stopped afterwards."""
    with managed(tmp_path, "worker") as start:

        def start_workers(backend: str, count: int) -> list[ManagePy]:
            spec = WORKERS[backend]
            return [
                start(
                    *spec["argv"],
                    ready=spec["ready"],
                    settings=spec["settings"],
                    env=backend_env(backend),
                )
                for _ in range(count)
            ]

        yield start_workers


def settled() -> bool:
    return not Run.objects.filter(status__in=[Status.QUEUED, Status.RUNNING]).exists()


@pytest.mark.parametrize("backend", ["database", "rq"])
def test_two_workers_run_every_fire_time_exactly_once(
    postgres_only, backend, backend_env, start_daemon, start_workers, make_schedule
):
    # overlap="allow": a run held up by a busy machine must not turn the next fire time
    # into a skip; what is under test is that each one runs once, on a worker.
    schedules = [
        make_schedule(interval=1, args=["a"], overlap="allow"),
        make_schedule(interval=1, args=["b"], overlap="allow"),
        make_schedule(interval=2, command="sleep_for", args=["0.5"], overlap="allow"),
        make_schedule(interval=3, args=["c"], timeout=10, overlap="allow"),
    ]
    workers = start_workers(backend, 2)
    daemon = start_daemon(settings=WORKERS[backend]["settings"], env=backend_env(backend))
    window_start = timezone.now() + timedelta(seconds=1)
    time.sleep(30)
    window_end = timezone.now() - timedelta(seconds=1)
    time.sleep(1)
    assert daemon.stop() == 0
    wait_for(settled, timeout=20)

    for schedule in schedules:
        assert_each_fire_time_once(schedule, window_start, window_end, at_least=9)
    runs = Run.objects.all()
    # Before the window, a slow first run (cold imports in a worker) may rightly make the
    # next fire time of a 1-second schedule skip; inside it, every run succeeds.
    in_window = runs.filter(scheduled_for__gte=window_start, scheduled_for__lte=window_end)
    assert Counter(in_window.values_list("status", flat=True)) == {Status.SUCCEEDED: len(in_window)}
    worker_pids = {worker.pid for worker in workers}
    ran = runs.exclude(status=Status.SKIPPED)  # a skipped fire time never reached a worker
    recorded = Counter(ran.values_list("host", "pid"))
    assert {host for host, _ in recorded} == {socket.gethostname()}
    assert {pid for _, pid in recorded} == worker_pids  # both worked, and only they
    assert "" not in set(ran.values_list("task_id", flat=True))
    assert "stdout a 0" in runs.filter(args=["a"]).first().stdout
    for process in (daemon, *workers):
        assert "Traceback" not in process.log, process.log


def test_a_worker_killed_mid_run_leaves_that_run_interrupted_and_the_other_goes_on(
    start_daemon, start_workers, make_schedule
):
    slow = make_schedule(executor="tasks", command="sleep_for", args=["60"], interval=3600)
    quick = make_schedule(executor="tasks", interval=1, args=["q"])
    workers = start_workers("database", 2)
    # Only the rule that a local process is gone can end the run within the wait below.
    start_daemon(settings={**QUICK, "HEARTBEAT_TIMEOUT": 60.0})
    run = Run.claim_manual(slow)  # admin's "run now", handed over by the daemon
    # Running, and its first line already stored for admin's live view.
    wait_for(lambda: "sleeping 60" in Run.objects.get(pk=run.pk).stdout, 15)
    run.refresh_from_db()
    [victim] = [worker for worker in workers if worker.pid == run.pid]
    [survivor] = [worker for worker in workers if worker is not victim]

    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()  # reaped, so its pid is gone rather than a zombie's
    killed_at = timezone.now()
    wait_for(lambda: Run.objects.get(pk=run.pk).status == Status.INTERRUPTED, 10)
    time.sleep(4)

    run.refresh_from_db()
    assert "worker running it stopped or died" in run.stderr
    assert "sleeping 60" in run.stdout  # its output so far was kept
    assert Heartbeat.objects.get(pk=run.heartbeat_id).kind == "worker"
    assert Run.objects.filter(schedule=slow).count() == 1  # not run again
    after = Run.objects.filter(schedule=quick, scheduled_for__gt=killed_at + timedelta(seconds=1))
    done = after.filter(status=Status.SUCCEEDED)
    assert done.count() >= 3
    assert set(done.values_list("pid", flat=True)) == {survivor.pid}
    assert not after.filter(status__in=[Status.FAILED, Status.INTERRUPTED]).exists()
    fired = list(Run.objects.filter(schedule=quick).values_list("scheduled_for", flat=True))
    assert len(fired) == len(set(fired))


def test_rqs_forking_worker_runs_it_too_in_its_work_horse(
    backend_env, start_daemon, start_workers, make_schedule
):
    schedule = make_schedule(executor="tasks", interval=3600, args=["forked"])
    spec = WORKERS["rq"]
    env = backend_env("rq")
    [worker] = start_workers("rq-fork", 1)
    start_daemon(settings=spec["settings"], env=env)
    run = Run.claim_manual(schedule)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == Status.SUCCEEDED, 20)

    run.refresh_from_db()
    assert "stdout forked 0" in run.stdout
    assert run.pid not in (None, worker.pid)  # the horse RQ forked for the job
    assert worker.alive()


def test_a_backend_that_is_down_fails_runs_and_the_daemon_goes_on(start_daemon, make_schedule):
    schedule = make_schedule(interval=1, args=["x"])
    daemon = start_daemon(settings={**QUICK, "TASKS_BACKEND": "rq"})  # nothing on its port
    wait_for(lambda: Run.objects.filter(schedule=schedule).count() >= 3, 10)

    assert daemon.alive()
    runs = Run.objects.filter(schedule=schedule, status=Status.FAILED)
    assert runs.count() >= 3
    assert all("Not queued: the task backend 'rq'" in run.stderr for run in runs)
    assert "could not be queued" in daemon.log
    assert "Traceback" not in daemon.log
