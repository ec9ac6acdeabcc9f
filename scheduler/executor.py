"""Runs one management command and returns what happened; records nothing itself.

Two ways to run it:

* ``process`` (default): a child forked from a fork server that set Django up once
  (:mod:`scheduler.forkserver`), so a run costs a fork rather than an interpreter start.
  The child's file descriptors 1 and 2 are pipes this process reads into capped buffers,
  so ``print()``, ``self.stdout``, C extensions and grandchildren are all captured and a
  flood costs no disk; a timeout or shutdown stops the child's whole process group;
  ``os._exit``, a segfault or a leak ends only the child. When the process that started
  the run dies, even by ``kill -9``, the fork server exits and takes every run's process
  group with it.
* ``thread``: ``call_command`` in the calling thread, for tiny frequent commands. It
  cannot be stopped from outside (hence no timeout) and a crash of the interpreter takes
  the daemon with it.
"""

from __future__ import annotations

import codecs
import contextlib
import faulthandler
import io
import os
import resource
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from .conf import conf
from .context import RunContext, running
from .forkserver import ForkedChild, ForkServer, name_process, prctl
from .models import Status
from .output import CappedBuffer, routed_std_streams

_PR_SET_PDEATHSIG = 1

# This module is imported by the server too: each child's entry point is looked up in it.
_fork_server = ForkServer(preload=["scheduler.executor"], prepare="scheduler.executor:_warm_up")


class _WarmUp(BaseCommand):
    """A command that does nothing, called through ``call_command`` by :func:`_warm_up`."""

    def handle(self, *args: object, **options: object) -> None:
        return None


def _warm_up() -> None:
    """Call a command that does nothing, as the run's ``call_command`` will call its own.

    Called in the fork server's child while it waits for its run. The memory this
    touches is then copied from the server now, not during the run: without it, that
    copying is most of what ``call_command`` costs in a fresh child.
    """
    call_command(_WarmUp(), stdout=io.StringIO(), stderr=io.StringIO())


@dataclass(frozen=True)
class ExecutionResult:
    status: str
    exit_code: int | None
    stdout: str
    stderr: str


def invoke(
    command: str,
    args: list[str],
    stdout: TextIO | io.TextIOBase,
    stderr: TextIO | io.TextIOBase,
    context: RunContext | None = None,
) -> int:
    """Call the command, as ``context``'s run, and translate how it ended into an exit code.

    ``CommandError`` gives its ``returncode``, ``SystemExit`` its code (a message code
    is printed and counts as 1, as the interpreter does), anything else 1 with the
    traceback on ``stderr``.
    """
    try:
        with running(context):
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


def status_for(exit_code: int | None) -> str:
    return Status.SUCCEEDED if exit_code == 0 else Status.FAILED


OutputCallback = Callable[[str, str], None]


class StopFlag(Protocol):
    """What tells a running command to stop: a ``threading.Event``, or anything as askable."""

    def is_set(self) -> bool: ...


"""Called with ("stdout" or "stderr", text) as a command's output arrives; the process
executor also calls it with "" while the command is quiet, for consumers that batch."""


def run_in_thread(
    command: str,
    args: list[str],
    *,
    output_limit: int | None = None,
    on_output: OutputCallback | None = None,
    context: RunContext | None = None,
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
        exit_code = invoke(command, args, out_stream, err_stream, context)
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


class _Capture:
    """Reads a child's stdout and stderr pipes into capped buffers and the live callback.

    Only ``limit`` bytes a stream are ever held, however much the command writes, and
    nothing goes to disk. Bytes are kept as written (undecodable ones are escaped when
    the buffer is rendered); the callback gets text decoded with escapes.
    """

    def __init__(self, fds: dict[str, int], limit: int, callback: OutputCallback | None) -> None:
        self.names = {fd: name for name, fd in fds.items()}
        self.buffers = {name: CappedBuffer(limit) for name in fds}
        self.callback = callback
        self.decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="backslashreplace") for name in fds
        }
        for fd in fds.values():
            os.set_blocking(fd, False)

    @property
    def open_fds(self) -> list[int]:
        return list(self.names)

    def read(self, fd: int, *, reads: int = 16) -> bool:
        """Take what the pipe holds now, in up to ``reads`` reads; False if none had data."""
        took = False
        for _ in range(reads):
            if fd not in self.names:
                break
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                self.close(fd)
                break
            self._take(self.names[fd], data)
            took = True
        return took

    def _take(self, name: str, data: bytes) -> None:
        self.buffers[name].write(data.decode("utf-8", errors="surrogateescape"))
        if self.callback:
            text = self.decoders[name].decode(data)
            if text:
                self.callback(name, text)

    def drain(self) -> None:
        """Take what is left once the run's group is gone, without waiting for an end.

        A process that left the run's group may still hold a pipe open: what it writes
        after this (or for longer than a second) is not waited for.
        """
        give_up = time.monotonic() + 1.0
        for fd in self.open_fds:
            while self.read(fd) and time.monotonic() < give_up:
                pass
            self.close(fd)
        if self.callback:
            for name, decoder in self.decoders.items():
                rest = decoder.decode(b"", final=True)
                if rest:
                    self.callback(name, rest)

    def close(self, fd: int) -> None:
        if self.names.pop(fd, None) is not None:
            os.close(fd)

    def close_all(self) -> None:
        for fd in self.open_fds:
            self.close(fd)

    def value(self, name: str) -> str:
        return self.buffers[name].getvalue()


def _child_main(
    fds: list[int],
    command: str,
    args: list[str],
    memory_limit: int | None,
    context: RunContext | None = None,
) -> int:
    """Entry point of the child process, forked from the fork server; its exit code.

    ``fds`` are the capture pipes' write ends: they become file descriptors 1 and 2, so
    output written below Python (C extensions, grandchildren) is captured too. The child
    leads its own process group so a timeout can stop everything it started, and dies
    with the fork server (which exits with the daemon, killing the groups of its runs)
    so a ``kill -9`` of the daemon leaves no run going unrecorded.
    """
    fork_server = os.getppid()
    name_process(command.encode())
    for target, fd in zip((1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    # Unbuffered all the way down, so output written just before os._exit() or a crash
    # is already in the pipe.
    sys.stdout = _unbuffered_text(1)
    sys.stderr = _unbuffered_text(2)
    faulthandler.enable(file=sys.stderr)
    os.setpgid(0, 0)
    _die_with_parent(fork_server)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    exit_code = invoke(command, args, sys.stdout, sys.stderr, context)
    connections.close_all()
    # The pipes are closed before the result is reported, so the owner has all the output
    # with it and need not wait for this process's exit (a large process's takes a while).
    faulthandler.disable()
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(devnull, fd)  # what the command left running may still write
        if devnull > 2:  # a command that closed its output got its own descriptor back
            os.close(devnull)
    return exit_code


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent (the fork server) exits."""
    if not prctl(_PR_SET_PDEATHSIG, signal.SIGKILL):
        return
    if os.getppid() != parent:  # the parent was already gone before prctl took effect
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
    stop: StopFlag | None = None,
    output_limit: int | None = None,
    on_output: OutputCallback | None = None,
    context: RunContext | None = None,
) -> ExecutionResult:
    """Run the command in a forked child; stop it on ``timeout`` or when ``stop`` is set.

    ``on_output`` is called in this thread with the output as it arrives (a few times a
    second), for live views and for echoing to a terminal.
    """
    limit = output_limit or conf.OUTPUT_LIMIT
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    capture = _Capture({"stdout": out_r, "stderr": err_r}, limit, on_output)
    try:
        try:
            child = _fork_server.fork(
                "scheduler.executor:_child_main",
                (command, args, conf.MEMORY_LIMIT, context),
                [out_w, err_w],
            )
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            ended_by = _follow(child, capture, timeout, stop)
        finally:
            child.close()
        stdout, stderr = capture.value("stdout"), capture.value("stderr")
    finally:
        capture.close_all()
    reported = child.result is not None
    exit_code = child.result if reported else child.exitcode
    if ended_by == Status.TIMED_OUT:
        stderr += f"\n[scheduler] Stopped after the {timeout:g} s timeout.\n"
        return ExecutionResult(Status.TIMED_OUT, exit_code, stdout, stderr)
    if ended_by == Status.INTERRUPTED:
        stderr += "\n[scheduler] Stopped because the scheduler shut down.\n"
        return ExecutionResult(Status.INTERRUPTED, exit_code, stdout, stderr)
    if not reported:
        stderr += _describe_abnormal_exit(child.exitcode)
    return ExecutionResult(status_for(exit_code), exit_code, stdout, stderr)


def _follow(
    child: ForkedChild,
    capture: _Capture,
    timeout: float | None,
    stop: StopFlag | None,
) -> str | None:
    """Read the child's output until it exits or must be stopped; how it was ended.

    Whatever else is left in its process group is killed once it is over.
    """
    assert child.pid is not None  # started by the caller
    tick = 0.25 if capture.callback else 0.5
    deadline = None if timeout is None else time.monotonic() + timeout
    ended_by = None
    try:
        with selectors.PollSelector() as selector:
            selector.register(child.sentinel, selectors.EVENT_READ)
            for fd in capture.open_fds:
                selector.register(fd, selectors.EVENT_READ)
            while True:
                wait_for = tick if deadline is None else min(tick, deadline - time.monotonic())
                ready = [key.fd for key, _ in selector.select(max(wait_for, 0))]
                for fd in ready:
                    if fd != child.sentinel and not capture.read(fd) and fd not in capture.names:
                        selector.unregister(fd)
                if child.sentinel in ready and child.over():
                    break
                if not ready and capture.callback:
                    capture.callback("stdout", "")
                if stop is not None and stop.is_set():
                    ended_by = Status.INTERRUPTED
                elif deadline is not None and time.monotonic() >= deadline:
                    ended_by = Status.TIMED_OUT
                if ended_by:
                    _stop_child(child)  # waits for the exit
                    break
    finally:
        if not child.over():
            _stop_child(child)
        # Grandchildren the command left behind die with the run.
        _signal_group(child.pid, signal.SIGKILL)
        capture.drain()
    return ended_by


def _stop_child(child: ForkedChild) -> None:
    """SIGTERM the child's process group, then SIGKILL after the grace period.

    The child itself is signalled too (unless it is known to have ended), in case it had
    not yet made itself a group leader.
    """
    assert child.pid is not None  # started by the caller
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


def start_fork_server(*, fork_this_process: bool = False) -> None:
    """Start the fork server ahead of the first run so that run does not pay for it.

    With ``fork_this_process`` (a daemon at start-up) the server is a fork of this
    process and shares its memory; this thread's database connections are closed first,
    so that no run inherits one. A process already running other threads starts a fresh
    interpreter instead.
    """
    if fork_this_process:
        connections.close_all()
        if _fork_server.start_as_fork():
            return
    _fork_server.ensure_running()


def stop_fork_server() -> None:
    """Stop this process's fork server, killing any run it still has, and wait for it."""
    _fork_server.stop()


def execute(
    command: str,
    args: list[str],
    executor: str,
    *,
    timeout: float | None = None,
    stop: StopFlag | None = None,
    on_output: OutputCallback | None = None,
    context: RunContext | None = None,
) -> ExecutionResult:
    """Run ``command`` with ``args`` by ``executor`` ("thread", else a child process)."""
    if executor == "thread":
        return run_in_thread(command, args, on_output=on_output, context=context)
    return run_in_process(
        command, args, timeout=timeout, stop=stop, on_output=on_output, context=context
    )
