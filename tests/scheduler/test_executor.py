"""The executor on its own: one command in, one result out, nothing recorded."""

from __future__ import annotations

import tempfile
import threading
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from scheduler.context import RunContext, current_run
from scheduler.executor import run_in_process, run_in_thread
from scheduler.models import Status
from scheduler.output import marker
from tests.conftest import pid_running, wait_for

EXECUTORS = [run_in_process, run_in_thread]


@pytest.fixture(params=EXECUTORS, ids=["process", "thread"])
def execute(request):
    return request.param


def test_success_captures_every_output_channel(execute):
    result = execute("say", ["hi"])
    assert result.status == Status.SUCCEEDED
    assert result.exit_code == 0
    assert result.stdout == "stdout hi 0\nprint hi 0\n"
    assert result.stderr == "stderr hi 0\nsys.stderr hi 0\n"


def test_command_error_gives_its_returncode(execute):
    result = execute("fail_with", ["3"])
    assert (result.status, result.exit_code) == (Status.FAILED, 3)
    assert "about to fail" in result.stdout
    assert "CommandError: failing on purpose with 3" in result.stderr


def test_uncaught_exception_gives_1_and_the_traceback(execute):
    result = execute("explode", [])
    assert (result.status, result.exit_code) == (Status.FAILED, 1)
    assert "Traceback (most recent call last)" in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr


@pytest.mark.parametrize("code", [0, 4])
def test_sys_exit_gives_its_code(execute, code):
    result = execute("exit_with", [str(code)])
    assert result.exit_code == code
    assert result.status == (Status.SUCCEEDED if code == 0 else Status.FAILED)


def test_arguments_the_parser_refuses_fail_the_run(execute):
    result = execute("say", ["hi", "--repeet", "2"])
    assert (result.status, result.exit_code) == (Status.FAILED, 1)
    assert "unrecognized arguments: --repeet" in result.stderr


def test_output_over_the_limit_is_capped_with_a_marker(execute):
    size = 5 * 1024 * 1024
    result = execute("flood", [str(size)], output_limit=1024 * 1024)
    assert result.stdout.startswith("FIRST LINE\n")
    assert result.stdout.endswith("LAST LINE\n")
    assert "bytes of output dropped" in result.stdout
    assert len(result.stdout.encode()) < 1024 * 1024 + 100


def test_concurrent_runs_keep_their_output_apart(execute):
    results = {}

    def run(word):
        results[word] = execute("say", [word, "--repeat", "5", "--pause", "0.02"])

    threads = [threading.Thread(target=run, args=(word,)) for word in ("apple", "pear")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for word, other in (("apple", "pear"), ("pear", "apple")):
        assert results[word].stdout.count(word) == 10
        assert other not in results[word].stdout
        assert other not in results[word].stderr


def test_process_os_exit_is_reported_with_output_so_far():
    result = run_in_process("exit_with", ["7", "--hard"])
    assert (result.status, result.exit_code) == (Status.FAILED, 7)
    assert result.stdout == "leaving\n"
    assert "exited with status 7" in result.stderr


def test_process_timeout_kills_the_command():
    result = run_in_process("sleep_for", ["30"], timeout=0.5)
    assert result.status == Status.TIMED_OUT
    assert result.stdout == "sleeping 30.0\n"
    assert "0.5 s timeout" in result.stderr


def test_process_stop_event_interrupts_the_command():
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    result = run_in_process("sleep_for", ["30"], stop=stop)
    assert result.status == Status.INTERRUPTED
    assert "shut down" in result.stderr


def test_process_undecodable_output_is_escaped():
    result = run_in_process("flood", ["0", "--binary"])
    assert result.status == Status.SUCCEEDED
    assert "\\xff\\xfe\\x00 not utf-8" in result.stdout


def test_marker_says_how_many_bytes_were_dropped():
    assert "123 bytes" in marker(123)


class TestHostileCommandsInAProcess:
    """Whatever the command does, the caller gets a truthful result and carries on."""

    def test_segfault_is_reported_with_the_signal(self):
        result = run_in_process("segfault", [])
        assert (result.status, result.exit_code) == (Status.FAILED, -11)
        assert "about to crash" in result.stdout
        assert "SIGSEGV" in result.stderr
        assert "Segmentation fault" in result.stderr  # faulthandler's Python traceback

    def test_busy_loop_is_killed_at_the_timeout(self):
        result = run_in_process("spin", [], timeout=0.5)
        assert result.status == Status.TIMED_OUT
        assert result.stdout == "spinning\n"

    def test_keyboard_interrupt_inside_the_command_fails_the_run(self):
        result = run_in_process("interrupt_self", [])
        assert (result.status, result.exit_code) == (Status.FAILED, 1)
        assert "KeyboardInterrupt" in result.stderr

    def test_fifty_megabytes_of_output_are_capped(self):
        result = run_in_process("flood", [str(50 * 1024 * 1024)])
        assert result.status == Status.SUCCEEDED
        assert result.stdout.startswith("FIRST LINE")
        assert result.stdout.endswith("LAST LINE\n")
        assert len(result.stdout) < 1024 * 1024 + 100

    def test_a_child_process_left_behind_does_not_outlive_the_run(self):
        result = run_in_process("spawn_child", ["60"])
        assert result.status == Status.SUCCEEDED
        child_pid = int(result.stdout.split()[-1])
        wait_for(lambda: not pid_running(child_pid), 2)  # SIGKILL lands asynchronously

    def test_a_command_that_closed_its_output_itself_still_succeeds(self):
        result = run_in_process("close_output", [])
        assert (result.status, result.exit_code) == (Status.SUCCEEDED, 0)
        assert result.stdout == "before closing\n"

    def test_a_flood_uses_no_more_disk_than_a_bound_and_keeps_head_and_tail(
        self, tmp_path, monkeypatch
    ):
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        done = threading.Event()
        peak = 0

        def watch() -> None:
            nonlocal peak
            while not done.wait(0.01):
                used = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
                peak = max(peak, used)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            result = run_in_process("flood", [str(64 * 1024 * 1024)], output_limit=64 * 1024)
        finally:
            done.set()
            watcher.join()
        assert peak < 1024 * 1024
        assert result.stdout.startswith("FIRST LINE\n")
        assert result.stdout.endswith("LAST LINE\n")
        assert marker(64 * 1024 * 1024 + 21 - 64 * 1024) in result.stdout

    @override_settings(SCHEDULER={"MEMORY_LIMIT": 512 * 1024 * 1024})
    def test_allocating_until_failure_fails_the_run_not_the_caller(self):
        result = run_in_process("allocate", [])
        assert (result.status, result.exit_code) == (Status.FAILED, 1)
        assert "MemoryError" in result.stderr
        assert "holding 64 MiB" in result.stdout


def test_a_command_outside_a_run_has_no_current_run(execute):
    assert execute("show_run", []).stdout.startswith("run: none\n")


def test_a_command_learns_its_run_in_each_executor(execute):
    fire = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    context = RunContext(id=7, scheduled_for=fire, reason="catch_up", schedule="nightly")

    result = execute("show_run", [], context=context)

    assert result.stdout.startswith("run: 7 2026-11-24T03:00:00+00:00 catch_up nightly\n")
    assert current_run() is None
