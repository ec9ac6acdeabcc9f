"""Runs one management command and returns what happened; records nothing itself.

Two ways to run it:

* ``process`` (default): a child forked from a fork server that imported Django once, so
  a run costs a fork rather than an interpreter start. The child's file descriptors 1 and
  2 point at temporary files, so ``print()``, ``self.stdout``, C extensions and
  grandchildren are all captured; a timeout or shutdown stops the child's whole process
  group; ``os._exit``, a segfault or a leak ends only the child.
* ``thread``: ``call_command`` in the calling thread, for tiny frequent commands. It
  cannot be stopped from outside (hence no timeout) and a crash of the interpreter takes
  the daemon with it.
"""

from __future__ import annotations

import codecs
import ctypes
import faulthandler
import io
import multiprocessing
import os
import resource
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import BinaryIO, TextIO

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from .conf import conf
from .models import Status
from .output import CappedBuffer, read_capped, routed_std_streams

_CONTEXT = multiprocessing.get_context("forkserver")
_PR_SET_PDEATHSIG = 1
_CONTEXT.set_forkserver_preload(["scheduler.forkserver_preload"])


@dataclass(frozen=True)
class ExecutionResult:
    status: str
    exit_code: int | None
    stdout: str
    stderr: str


def invoke(command: str, args: list[str], stdout: TextIO, stderr: TextIO) -> int:
    """Call the command and translate how it ended into an exit code.

    ``CommandError`` gives its ``returncode``, ``SystemExit`` its code (a message code
    is printed and counts as 1, as the interpreter does), anything else 1 with the
    traceback on ``stderr``.
    """
    try:
        call_command(command, *args, stdout=stdout, stderr=stderr)
    except CommandError as exc:
        stderr.write(f"CommandError: {exc}\n")
        return exc.returncode
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        stderr.write(f"{exc.code}\n")
        return 1
    except BaseException:
        stderr.write(traceback.format_exc())
        return 1
    return 0


def status_for(exit_code: int) -> str:
    return Status.SUCCEEDED if exit_code == 0 else Status.FAILED


OutputCallback = Callable[[str, str], None]
"""Called with ("stdout" or "stderr", text) as a command's output arrives; the process
executor also calls it with "" while the command is quiet, for consumers that batch."""


def run_in_thread(
    command: str,
    args: list[str],
    *,
    output_limit: int | None = None,
    on_output: OutputCallback | None = None,
) -> ExecutionResult:
    """Run the command in this thread, capturing ``print()`` apart from other threads' runs.

    ``on_output`` is called in the command's own thread, as it writes.
    """
    limit = output_limit or conf.OUTPUT_LIMIT
    out, err = CappedBuffer(limit), CappedBuffer(limit)
    sys_out, sys_err = routed_std_streams()
    out_stream = Tee(out, "stdout", on_output) if on_output else out
    err_stream = Tee(err, "stderr", on_output) if on_output else err
    with sys_out.routed_to(out_stream), sys_err.routed_to(err_stream):
        exit_code = invoke(command, args, out_stream, err_stream)
    return ExecutionResult(status_for(exit_code), exit_code, out.getvalue(), err.getvalue())


class Tee(io.TextIOBase):
    """Writes to a capture buffer and reports each write to a callback."""

    def __init__(self, buffer: CappedBuffer, name: str, callback: OutputCallback) -> None:
        super().__init__()
        self.buffer, self.name, self.callback = buffer, name, callback

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buffer.write(text)
        self.callback(self.name, text)
        return len(text)


class _Follower:
    """Reads what a child appended to its capture files since the last look."""

    def __init__(self, files: dict[str, BinaryIO], callback: OutputCallback) -> None:
        self.files = files
        self.callback = callback
        self.offsets = dict.fromkeys(files, 0)
        self.decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="backslashreplace") for name in files
        }

    def poll(self, *, final: bool = False) -> None:
        """Report new output; with none, report "" so a consumer can flush what it holds."""
        reported = False
        for name, stream in self.files.items():
            data = os.pread(stream.fileno(), 1 << 20, self.offsets[name])
            while data:
                self.offsets[name] += len(data)
                text = self.decoders[name].decode(data)
                if text:
                    self.callback(name, text)
                    reported = True
                data = os.pread(stream.fileno(), 1 << 20, self.offsets[name])
            if final:
                rest = self.decoders[name].decode(b"", final=True)
                if rest:
                    self.callback(name, rest)
                    reported = True
        if not reported:
            self.callback("stdout", "")


def _child_main(
    command: str,
    args: list[str],
    out_path: str,
    err_path: str,
    result_path: str,
    memory_limit: int | None,
) -> None:
    """Entry point of the child process, forked from the fork server.

    File descriptors 1 and 2 become the capture files, so output written below Python
    (C extensions, grandchildren) is captured too; the child leads its own process group
    so a timeout can stop everything it started, and dies with the fork server (which
    exits with the daemon) so a ``kill -9`` of the daemon leaves no run going unrecorded.
    """
    for fd, path in ((1, out_path), (2, err_path)):
        target = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(target, fd)
        os.close(target)
    # Unbuffered all the way down, so output written just before os._exit() or a crash
    # is already in the file.
    sys.stdout = _unbuffered_text(1)
    sys.stderr = _unbuffered_text(2)
    faulthandler.enable(file=sys.stderr)
    os.setpgid(0, 0)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    exit_code = invoke(command, args, sys.stdout, sys.stderr)
    with open(result_path, "w") as result:
        result.write(str(exit_code))
    connections.close_all()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (the fork server) exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent was already gone before prctl took effect
        os._exit(1)


def _unbuffered_text(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", write_through=True)


def _signal_group(pid: int, signum: int) -> None:
    """Signal the run's process group (the child leads it, see ``_child_main``)."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def run_in_process(
    command: str,
    args: list[str],
    *,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    output_limit: int | None = None,
    on_output: OutputCallback | None = None,
) -> ExecutionResult:
    """Run the command in a forked child; stop it on ``timeout`` or when ``stop`` is set.

    ``on_output`` is called in this thread with the output as it arrives (a few times a
    second), for live views and for echoing to a terminal.
    """
    limit = output_limit or conf.OUTPUT_LIMIT
    with (
        tempfile.NamedTemporaryFile(prefix="scheduler-out-") as out,
        tempfile.NamedTemporaryFile(prefix="scheduler-err-") as err,
        tempfile.NamedTemporaryFile(prefix="scheduler-result-") as result_file,
    ):
        child = _CONTEXT.Process(
            target=_child_main,
            args=(command, args, out.name, err.name, result_file.name, conf.MEMORY_LIMIT),
        )
        child.start()
        follower = _Follower({"stdout": out, "stderr": err}, on_output) if on_output else None
        tick = 0.25 if follower else 0.5
        deadline = None if timeout is None else time.monotonic() + timeout
        ended_by = None
        try:
            while True:
                wait_for = tick if deadline is None else min(tick, deadline - time.monotonic())
                exited = wait([child.sentinel], max(wait_for, 0))
                if follower:
                    follower.poll(final=bool(exited))
                if exited:
                    break
                if stop is not None and stop.is_set():
                    ended_by = Status.INTERRUPTED
                elif deadline is not None and time.monotonic() >= deadline:
                    ended_by = Status.TIMED_OUT
                if ended_by:
                    _stop_child(child)
                    break
            child.join()
        finally:
            if child.exitcode is None:
                _stop_child(child)
            # Grandchildren the command left behind die with the run.
            _signal_group(child.pid, signal.SIGKILL)
        if follower:
            follower.poll(final=True)
        stdout = read_capped(out, limit)
        stderr = read_capped(err, limit)
        reported = result_file.read().decode().strip()
    exit_code = int(reported) if reported else child.exitcode
    if ended_by == Status.TIMED_OUT:
        stderr += f"\n[scheduler] Stopped after the {timeout:g} s timeout.\n"
        return ExecutionResult(Status.TIMED_OUT, exit_code, stdout, stderr)
    if ended_by == Status.INTERRUPTED:
        stderr += "\n[scheduler] Stopped because the scheduler shut down.\n"
        return ExecutionResult(Status.INTERRUPTED, exit_code, stdout, stderr)
    if not reported:
        stderr += _describe_abnormal_exit(child.exitcode)
    return ExecutionResult(status_for(exit_code), exit_code, stdout, stderr)


def _stop_child(child: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM the child's process group, then SIGKILL after the grace period.

    The child itself is signalled too, through multiprocessing (which knows whether it
    was reaped), in case it had not yet made itself a group leader.
    """
    _signal_group(child.pid, signal.SIGTERM)
    child.terminate()
    child.join(conf.KILL_GRACE)
    if child.exitcode is None:
        _signal_group(child.pid, signal.SIGKILL)
        child.kill()
        child.join()


def _describe_abnormal_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"\n[scheduler] The command's process was killed by {name}.\n"
    return f"\n[scheduler] The command's process exited with status {exitcode} without finishing.\n"


def start_fork_server() -> None:
    """Start the fork server ahead of the first run so that run does not pay for it."""
    from multiprocessing import forkserver

    forkserver.ensure_running()


def execute(
    command: str,
    args: list[str],
    executor: str,
    *,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    on_output: OutputCallback | None = None,
) -> ExecutionResult:
    if executor == "thread":
        return run_in_thread(command, args, on_output=on_output)
    return run_in_process(command, args, timeout=timeout, stop=stop, on_output=on_output)
