"""The fork server on its own: fork a child per request, report its result and its end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from scheduler.forkserver import LOST, NAME, SPARE_NAME, ForkServer, children
from tests.conftest import pid_running, process_name, wait_for


@pytest.fixture
def server():
    server = ForkServer(preload=[])
    yield server
    server.stop()


def fork(server: ForkServer, name: str, *args, fds=()):
    return server.fork(f"tests.testapp.forked:{name}", args, list(fds))


def read_pid(fd: int) -> int:
    with os.fdopen(fd) as pipe:
        return int(pipe.read())


def spare_of(server: ForkServer) -> int:
    """Wait for the server's spare child (forked once a run has its child); its pid."""

    def spare() -> int | None:
        for pid in children(server.pid):
            if process_name(pid) == SPARE_NAME:
                return pid
        return None

    return wait_for(spare, 10, interval=0.01)


def kill_the_spare(server: ForkServer) -> int:
    """Have a spare forked, kill it as it waits, and return its pid once it is gone."""
    fork(server, "returns", 0).join(10)
    spare = spare_of(server)
    os.kill(spare, signal.SIGKILL)
    wait_for(lambda: not pid_running(spare), 5)
    return spare


def test_the_entry_points_result_and_the_exit_status_are_reported(server):
    child = fork(server, "returns", 3)
    assert child.join(10) == 0
    assert child.result == 3
    child.close()


def test_an_entry_point_that_raises_reports_no_result_and_its_traceback(server):
    err_r, err_w = os.pipe()
    child = fork(server, "raises", fds=[err_w])
    os.close(err_w)
    assert child.join(10) == 1
    assert child.result is None
    with os.fdopen(err_r) as pipe:
        assert "RuntimeError: broken entry point" in pipe.read()


def test_a_fresh_server_lists_the_commands_once_for_all_its_children(server):
    child = fork(server, "commands_known_at_fork")
    assert child.join(10) == 0
    assert child.result == 1


def test_a_killed_child_reports_the_signal(server):
    child = fork(server, "kills_itself")
    assert child.join(10) == -signal.SIGKILL
    assert child.result is None


def test_a_child_can_be_stopped_by_its_owner(server):
    child = fork(server, "returns", 0)
    child.join(10)
    child.terminate()  # already ended: nothing is signalled
    pid_r, pid_w = os.pipe()
    child = fork(server, "writes_pid_and_sleeps", 60, fds=[pid_w])
    os.close(pid_w)
    assert read_pid(pid_r) == child.pid
    child.terminate()
    assert child.join(10) == -signal.SIGTERM


# Also in a spare forked for the request, while the server held the run's descriptors.
@pytest.mark.parametrize("spare_died", [False, True], ids=["spare", "spare forked late"])
def test_what_a_run_execs_inherits_neither_the_reply_socket_nor_the_passed_fds(server, spare_died):
    if spare_died:
        kill_the_spare(server)
    pipe_r, pipe_w = os.pipe()
    child = fork(server, "counts_inheritable_fds", fds=[pipe_w])
    os.close(pipe_w)
    os.close(pipe_r)
    assert child.join(10) == 0
    assert child.result == 0


def test_runs_in_parallel_each_get_their_own_report(server):
    children = [fork(server, "returns", value) for value in range(20)]
    assert [child.join(10) for child in children] == [0] * 20
    assert [child.result for child in children] == list(range(20))


def test_each_run_takes_the_child_forked_ahead_of_it(server):
    fork(server, "returns", 0).join(10)
    spare = spare_of(server)
    child = fork(server, "returns", 1)
    assert child.pid == spare
    assert child.join(10) == 0 and child.result == 1
    assert spare_of(server) not in (spare, server.pid)


def test_each_child_is_prepared_once_before_its_run():
    server = ForkServer(preload=["tests.testapp.forked"], prepare="tests.testapp.forked:prepare")
    try:
        results = []
        for _ in range(2):
            child = fork(server, "times_prepared_here")
            child.join(10)
            results.append(child.result)
    finally:
        server.stop()
    assert results == [1, 1]


def test_a_failing_prepare_is_printed_and_the_run_goes_ahead(capfd):
    server = ForkServer(
        preload=["tests.testapp.forked"], prepare="tests.testapp.forked:prepare_fails"
    )
    try:
        child = fork(server, "returns", 5)
        assert child.join(10) == 0 and child.result == 5
    finally:
        server.stop()
    assert "RuntimeError: broken prepare" in capfd.readouterr().err


def test_a_failed_fork_leaves_the_runs_going_and_the_next_request_forks_anew(capfd):
    # The server's first fork is the spare; its second, the next spare, fails.
    server = ForkServer(preload=["tests.testapp.fork_fails"])
    try:
        pid_r, pid_w = os.pipe()
        going = fork(server, "writes_pid_and_sleeps", 1, fds=[pid_w])
        os.close(pid_w)
        read_pid(pid_r)
        child = fork(server, "returns", 6)
        assert child.join(10) == 0 and child.result == 6
        assert going.join(10) == 0
    finally:
        server.stop()
    assert "a test's failing fork" in capfd.readouterr().err


def test_a_spare_that_died_waiting_is_replaced(server):
    spare = kill_the_spare(server)
    child = fork(server, "returns", 4)
    assert child.join(10) == 0 and child.result == 4
    assert child.pid != spare


def test_stopping_the_server_kills_its_runs(server):
    pid_r, pid_w = os.pipe()
    child = fork(server, "writes_pid_and_sleeps", 60, fds=[pid_w])
    os.close(pid_w)
    pid = read_pid(pid_r)
    spare = spare_of(server)
    server.stop()
    wait_for(lambda: not pid_running(pid) and not pid_running(spare), 5)
    assert child.join(10) == LOST


def test_a_dead_server_is_replaced_at_the_next_request(server):
    fork(server, "returns", 0).join(10)
    first = server.pid
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not pid_running(first), 5)
    child = fork(server, "returns", 7)
    assert child.join(10) == 0 and child.result == 7
    assert server.pid != first


def test_the_server_and_its_spare_ignore_the_owners_group_signals(server):
    fork(server, "returns", 0).join(10)
    first, spare = server.pid, spare_of(server)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        os.kill(first, signum)
        os.kill(spare, signum)
    child = fork(server, "returns", 2)
    assert child.join(10) == 0
    assert server.pid == first and child.pid == spare


# Owners that fork run as processes of their own: this test process may have threads of
# other tests, and a fork of a process with threads may deadlock in the child.
OWNER_THAT_FORKS = """
import os
from scheduler.forkserver import ForkServer

server = ForkServer(preload=[])
assert server.fork("tests.testapp.forked:returns", (0,), []).join(10) == 0
parent_server = server.pid
pid = os.fork()
if pid == 0:
    try:
        child = server.fork("tests.testapp.forked:returns", (5,), [])
        ok = child.join(10) == 0 and child.result == 5 and server.pid != parent_server
        server.stop()
    finally:
        os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), server.pid == parent_server)
print(server.fork("tests.testapp.forked:returns", (1,), []).join(10))
"""

FORKED_OWNER = """
import os
from scheduler.forkserver import ForkServer
from tests.testapp import forked

server = forked.INHERITED_SERVER = ForkServer(preload=[])
assert server.start_as_fork()
child = server.fork("tests.testapp.forked:returns", (4,), [])
assert child.join(10) == 0 and child.result == 4
# A run that uses the process executor itself gets a server of its own.
child = server.fork("tests.testapp.forked:forks_through_the_inherited_server", (), [])
assert child.join(30) == 0 and child.result == 9, (child.exitcode, child.result)
with open(f"/proc/{server.pid}/stat") as stat:
    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
with open(f"/proc/{server.pid}/comm") as comm:
    print(parent == os.getpid(), comm.read().strip())
"""


# The owner adopts what its server leaves behind, as init would: a child the server did
# not reap would stay a zombie under it.
OWNER_THAT_ADOPTS = """
import os
from scheduler.forkserver import ForkServer, children, prctl

assert prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
server = ForkServer(preload=[])
pid_r, pid_w = os.pipe()
child = server.fork("tests.testapp.forked:writes_pid_and_sleeps", (60,), [pid_w])
os.close(pid_w)
run = int(os.read(pid_r, 100))
server.stop()
print(len(children(os.getpid())), os.path.exists(f"/proc/{run}"))
"""


def run_owner(script: str) -> list[str]:
    """Run ``script`` as an owner process of its own; the words it printed."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_forked_owner_starts_its_own_server_and_leaves_the_parents_alone():
    assert run_owner(OWNER_THAT_FORKS) == ["0", "True", "0"]


def test_a_server_forked_from_a_single_threaded_owner_is_named_and_runs_children_that_fork():
    assert run_owner(FORKED_OWNER) == ["True", NAME.decode()]


def test_a_stopped_server_has_reaped_its_runs_and_its_spare():
    assert run_owner(OWNER_THAT_ADOPTS) == ["0", "False"]


def test_a_process_with_threads_is_not_forked(server):
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not server.start_as_fork()
        assert server.pid is None
    finally:
        release.set()
        thread.join()
