"""End to end: a process-executor run dies with whatever started it, even by ``kill -9``.

The daemon, a task worker and a terminal's ``schedules run`` each own the runs they
start in a child process; when such an owner is killed outright, the fork server it
started exits and takes the process group of each run (grandchildren included) along.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.forkserver import NAME
from scheduler.models import Run, Status
from tests import debian, manage_py
from tests.conftest import ManagePy, database_url, managed, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUICK = {"HEARTBEAT_INTERVAL": 1.0, "HEARTBEAT_TIMEOUT": 5.0, "SHUTDOWN_GRACE": 1.0}


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """State, parent pid and process group of ``pid``; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return None
    return fields[0].decode(), int(fields[1]), int(fields[2])


def alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def group_alive(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat and stat[2] == pgid and stat[0] != "Z":
                members.append(int(entry.name))
    return members


def fork_servers_of(pid: int) -> list[int]:
    """The fork servers ``pid`` started: forked from it, or a fresh interpreter."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            try:
                comm = (entry / "comm").read_bytes().strip()
            except OSError:
                continue
            if stat and stat[1] == pid and comm == NAME:
                found.append(int(entry.name))
    return found


def run_pids(path: Path) -> tuple[int, int, int]:
    """The run's child pid, its process group and its grandchild, once it wrote them."""
    wait_for(path.exists, 20)
    pid, pgid, grandchild = map(int, path.read_text().split())
    assert pgid == pid  # the run's child leads its own group
    assert alive(grandchild)
    return pid, pgid, grandchild


def kill_owner_and_check_the_run_is_gone(owner: ManagePy, path: Path) -> int:
    """``kill -9`` the owner; its run's group and its fork server are gone in seconds."""
    pid, pgid, grandchild = run_pids(path)
    [fork_server] = fork_servers_of(owner.pid)
    owner.process.send_signal(signal.SIGKILL)
    owner.process.wait()
    wait_for(lambda: not group_alive(pgid), 5)
    wait_for(lambda: not alive(fork_server), 5)
    assert not alive(pid) and not alive(grandchild)
    return pgid


def test_kill_9_of_the_daemon_ends_its_run_and_a_restarted_daemon_runs_no_second_copy(
    start_daemon, make_schedule, tmp_path
):
    path = tmp_path / "pids"
    schedule = make_schedule(
        command="spawn_and_wait", args=[str(path), "60"], interval=1, overlap="skip"
    )
    daemon = start_daemon(settings=QUICK)
    kill_owner_and_check_the_run_is_gone(daemon, path)
    [first] = Run.objects.filter(schedule=schedule, status=Status.RUNNING)
    path.unlink()

    start_daemon(settings=QUICK)
    wait_for(lambda: Run.objects.get(pk=first.pk).status == Status.INTERRUPTED, 15)
    # A new run starts only now that the first is over, and is a run of its own.
    pid, _, _ = run_pids(path)
    second = Run.objects.filter(schedule=schedule, status=Status.RUNNING).get()
    assert second.pk != first.pk and pid != first.pid


def test_kill_9_of_a_task_worker_ends_its_run(start_daemon, make_schedule, tmp_path):
    path = tmp_path / "pids"
    schedule = make_schedule(
        executor="tasks", command="spawn_and_wait", args=[str(path), "60"], interval=3600
    )
    settings = {**QUICK, "EXECUTOR": "tasks"}
    with managed(tmp_path, "worker") as start:
        worker = start(
            *["db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.1"],
            ready="Starting worker",
            settings=settings,
        )
        start_daemon(settings=settings)
        run = Run.claim_manual(schedule)
        kill_owner_and_check_the_run_is_gone(worker, path)
        wait_for(lambda: Run.objects.get(pk=run.pk).status == Status.INTERRUPTED, 15)


def test_kill_9_of_a_terminal_schedules_run_ends_its_run(make_schedule, tmp_path):
    path = tmp_path / "pids"
    schedule = make_schedule(command="spawn_and_wait", args=[str(path), "60"], interval=3600)
    with managed(tmp_path, "terminal") as start:
        terminal = start("schedules", "run", schedule.name, ready="started", settings=QUICK)
        kill_owner_and_check_the_run_is_gone(terminal, path)
    assert Run.objects.get(schedule=schedule).status == Status.RUNNING  # until a daemon looks


def test_sigkill_of_the_fork_server_ends_the_run_and_the_next_run_gets_a_new_one(
    start_daemon, make_schedule, tmp_path
):
    path = tmp_path / "pids"
    schedule = make_schedule(command="spawn_and_wait", args=[str(path), "60"], interval=3600)
    daemon = start_daemon(settings=QUICK)
    run = Run.claim_manual(schedule)
    _, pgid, _ = run_pids(path)
    [fork_server] = fork_servers_of(daemon.pid)
    os.kill(fork_server, signal.SIGKILL)
    wait_for(lambda: not group_alive(pgid), 5)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == Status.FAILED, 10)
    path.unlink()
    Run.claim_manual(schedule)
    run_pids(path)
    assert daemon.alive()


def zombies_under(root: int) -> list[int]:
    """Zombie processes among the descendants of ``root``."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat:
                stats[int(entry.name)] = stat
    zombies, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (_, ppid, _) in stats.items() if ppid == parent]
        zombies += [pid for pid in children if stats[pid][0] == "Z"]
        frontier += children
    return zombies


def dockerfile_entrypoint() -> list[str]:
    """The image's ENTRYPOINT (none: the command is PID 1), with its program installed."""
    lines = (manage_py.ROOT / "Dockerfile").read_text().splitlines()
    found = [json.loads(line.split(None, 1)[1]) for line in lines if line.startswith("ENTRYPOINT")]
    entrypoint = found[-1] if found else []
    if entrypoint and not shutil.which(entrypoint[0]):
        debian.install(Path(entrypoint[0]).name)
    return entrypoint


def test_as_pid_1_of_the_image_no_zombie_is_left_of_what_commands_orphan(make_schedule, tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a pid namespace of its own")
    schedule = make_schedule(executor="thread", command="leave_orphan", args=["0.1"], interval=1)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SCHEDULER_TEST_SETTINGS": json.dumps(QUICK),
    }
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *dockerfile_entrypoint()]
    argv += [sys.executable, str(manage_py.ROOT / "manage.py"), "runscheduler"]
    with open(tmp_path / "container.log", "wb") as log:
        container = subprocess.Popen(
            argv,
            cwd=manage_py.ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: Run.objects.filter(schedule=schedule, status=Status.SUCCEEDED).count() >= 3, 20
        )
        wait_for(lambda: not zombies_under(container.pid), 5)
    finally:
        manage_py.stop(container, signal.SIGTERM, timeout=5)
        manage_py.kill_group(container.pid)
