"""Fork each process-executor run from one process that already has Django loaded.

The fork server belongs to the process that owns the runs (the daemon, a task worker, a
terminal's ``schedules run``). The daemon forks it from itself at start-up, before it has
threads or database connections, so the server shares the daemon's memory pages rather
than loading Django a second time; any other owner starts it as a fresh interpreter,
which inherits none of its threads or locks. A run is then a child forked from the
server: no interpreter start, no imports, no pickled main module. The server keeps one
such child forked ahead (the spare), so a run does not wait for its fork.

A request is one datagram on a ``SOCK_SEQPACKET`` socket pair: the entry point's name and
arguments, pickled, and the run's file descriptors, the first of them a reply socket. The
server passes the datagram on to the spare over a socket pair of their own. On the reply
socket the server sends the child's pid, the child sends what the entry point returned,
and the server, once it has reaped the child, sends its exit status.

The server exits when the owner's end of the pair closes, however the owner died, and on
its way out it kills the process group of every run it forked. It is a child subreaper:
what runs leave behind is adopted, so it is reaped rather than left as a zombie, and
killed with the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import gc
import importlib
import os
import pickle
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import cast

_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
# What ``ps -o comm`` and ``/proc/<pid>/comm`` show for the server, whichever way it started.
NAME = b"forkserver"
# ... and for the child forked ahead of the next run, until it takes the run's name.
SPARE_NAME = b"forkserver-next"
_MAX_REQUEST = 1 << 16
_MAX_FDS = 8
_MESSAGE = struct.Struct("=cq")
PID, RESULT, EXIT = b"P", b"R", b"X"
# A child whose server died before reporting its end, as multiprocessing reports it.
LOST = 255


class ForkServerGone(OSError):
    """The fork server ended before it forked the run."""


class ForkedChild:
    """A run's process as its owner sees it: forked by the server, signalled by pid.

    ``sentinel`` is readable whenever the server or the child has news; ``poll()`` takes
    it. ``result`` is what the entry point returned (``None`` if it never returned) and
    ``exitcode`` how the process ended (a negative signal number if killed).
    """

    def __init__(self, reply: socket.socket) -> None:
        self.reply = reply
        self.pid: int | None = None
        self.result: int | None = None
        self.exitcode: int | None = None
        # The child may report its result before the server has sent its pid.
        while self.pid is None:
            if not self._receive():
                break
        if self.pid is None:
            reply.close()
            raise ForkServerGone(
                "the fork server could not fork the run, or ended first (see its stderr)"
            )

    @property
    def sentinel(self) -> int:
        return self.reply.fileno()

    def _receive(self) -> bool:
        """Take one message, waiting for it; False once the server's end is closed."""
        data = self.reply.recv(_MESSAGE.size)
        if not data:
            if self.exitcode is None:
                self.exitcode = LOST
            return False
        kind, value = _MESSAGE.unpack(data)
        if kind == PID:
            self.pid = value
        elif kind == RESULT:
            self.result = value
        elif kind == EXIT:
            self.exitcode = value
        return True

    def join(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds (for ever if None) for the exit; return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = select.poll()
        poller.register(self.reply, select.POLLIN)
        while self.exitcode is None:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not poller.poll(None if wait is None else wait * 1000):
                break
            self._receive()
        return self.exitcode

    def poll(self) -> int | None:
        """Take whatever news is waiting, without blocking; return the exit status if in."""
        return self.join(0)

    def over(self) -> bool:
        """Take the news waiting; return whether the entry point returned or the child exited.

        A child that returned may still be exiting; what it returned is its result.
        """
        self.poll()
        return self.result is not None or self.exitcode is not None

    def send_signal(self, signum: int) -> None:
        """Signal the child unless it is known to have ended."""
        if self.poll() is None and self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        self.reply.close()


class ForkServer:
    """The owner's side: starts the server on first use (and again if it died), sends runs.

    ``prepare`` ("module:function") is called, without arguments, in each child while it
    waits for its run: work every run does, done ahead of the run.
    """

    def __init__(self, preload: Sequence[str], prepare: str | None = None) -> None:
        self.preload = tuple(preload)
        self.prepare = prepare
        self._lock = threading.Lock()
        self._control: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | _ForkedServer | None = None
        self._owner = 0

    def start_as_fork(self) -> bool:
        """Start the server as a fork of this process, sharing its pages; False if unsafe.

        Only a process with no other thread can be forked safely (another thread might
        hold a lock the server would then wait on for ever), and it must hold no open
        database connection, whose socket the server's children would share.
        """
        with self._lock:
            self._forget_inherited()
            if self._control is not None:
                return True
            if threading.active_count() > 1:
                return False
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            # Out of the collector's sight, the objects loaded so far are never written to
            # by a collection: their pages stay shared with the server for good.
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                try:
                    self._lock = threading.Lock()  # held by the parent at the fork
                    ours.close()
                    _become_server()
                    Server(theirs, self.prepare).serve()
                finally:
                    os._exit(0)
            theirs.close()
            self._control, self._process, self._owner = ours, _ForkedServer(pid), os.getpid()
            return True

    def ensure_running(self) -> socket.socket:
        """Start the server unless this process's is alive; return its control socket."""
        with self._lock:
            self._forget_inherited()
            if self._process is not None and self._process.poll() is not None:
                self._stop()
            if self._control is None:
                self._start()
            assert self._control is not None
            return self._control

    def _forget_inherited(self) -> None:
        """Drop a server inherited through a fork of the owner: it is the parent's."""
        if self._owner != os.getpid():
            if self._control is not None:
                self._control.close()
            self._control, self._process = None, None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = (
            f"import sys; sys.path[:] = {sys.path!r}; "
            "from scheduler.forkserver import main; "
            f"main({theirs.fileno()}, {self.preload!r}, {self.prepare!r})"
        )
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
        self._control, self._owner = ours, os.getpid()

    def fork(self, entry: str, args: tuple[object, ...], fds: Sequence[int]) -> ForkedChild:
        """Have ``entry`` ("module:function") called as ``function(fds, *args)`` in a new child.

        ``fds`` are handed to the child; the caller still closes its own copies.
        """
        payload = pickle.dumps((entry, args), pickle.HIGHEST_PROTOCOL)
        for attempt in (1, 2):
            control = self.ensure_running()
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                socket.send_fds(control, [payload], [theirs.fileno(), *fds])
            except OSError:
                mine.close()
                if attempt == 2:
                    raise
                with self._lock:
                    self._stop()  # it died since it was last seen alive
                continue
            finally:
                theirs.close()
            return ForkedChild(mine)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (its runs are killed with it) and wait for it to exit."""
        with self._lock:
            if self._owner == os.getpid():
                self._stop()

    def _stop(self) -> None:
        if self._control is not None:
            self._control.close()
        if self._process is not None:
            self._process.wait()
        self._control, self._process = None, None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


class _ForkedServer:
    """A server forked from this process, waited for as ``subprocess.Popen`` would be."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self._wait(os.WNOHANG)

    def wait(self) -> int:
        returncode = self._wait(0)
        assert returncode is not None
        return returncode

    def _wait(self, options: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, options)
            except ChildProcessError:  # reaped by someone else: gone all the same
                self.returncode = LOST
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def main(fd: int, preload: Sequence[str], prepare: str | None = None) -> None:
    """Run a fresh server on the control socket ``fd`` until the owner's end closes."""
    _become_server()
    import django

    django.setup()
    for name in preload:
        importlib.import_module(name)
    # Every run's ``call_command`` looks its command up here: found once, not per child.
    from django.core.management import get_commands

    get_commands()
    gc.freeze()  # as start_as_fork does: children's collections leave these pages shared
    Server(socket.socket(fileno=fd), prepare).serve()


def _become_server() -> None:
    # It ends with its owner, not on a signal meant for the owner's group: a terminal's
    # Ctrl-C or hang-up, or a group's SIGTERM, would otherwise end the runs before the
    # owner could stop them gracefully. Each run's child restores the default handlers.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    name_process(NAME)
    prctl(_PR_SET_CHILD_SUBREAPER, 1)


def name_process(name: bytes) -> None:
    """Show ``name`` in ``ps`` and ``top`` for this process (Linux keeps 15 bytes)."""
    prctl(_PR_SET_NAME, name[:15])


def prctl(option: int, value: int | bytes) -> bool:
    """Call Linux's ``prctl``; False where there is none."""
    libc = _libc()
    if libc is None:
        return False
    libc.prctl(option, value)
    return True


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """Return the C library, loaded once: by the server, so its children have it already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "prctl") else None


class Server:
    """The server's loop: hand each request to a spare child, report each exit, kill all
    runs at the end.

    A spare is forked ahead of the request it will serve, so neither the ``fork()`` (a
    few milliseconds for a process with Django loaded) nor the child's first page copies
    are on a run's path. The next spare is forked once the run has its child.
    """

    def __init__(self, control: socket.socket, prepare: str | None = None) -> None:
        self.control = control
        self.prepare = prepare
        self.children: dict[int, socket.socket] = {}
        self.spare: tuple[int, socket.socket] | None = None
        self.wake_r, self.wake_w = os.pipe()
        for end in (self.wake_r, self.wake_w):
            os.set_blocking(end, False)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        try:
            self.fork_spare()
            with selectors.DefaultSelector() as selector:
                selector.register(self.control, selectors.EVENT_READ)
                selector.register(self.wake_r, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select():
                        if key.fileobj is self.control:
                            if not self.take_request():
                                return
                        else:
                            self.reap()
        finally:
            self.kill_runs()
            self.reap_killed()

    def take_request(self) -> bool:
        """Hand the request to the spare child; False once the owner is gone."""
        payload, fds, _, _ = socket.recv_fds(self.control, _MAX_REQUEST, _MAX_FDS)
        if not payload or not fds:
            for fd in fds:
                os.close(fd)
            return False
        try:
            pid = self.hand_over(payload, fds)
        except OSError:  # no spare (its fork failed), or it died waiting: fork one now
            self.fork_spare(leave=fds)
            try:
                pid = self.hand_over(payload, fds)
            except OSError:  # no child can be forked now: this run is lost, the others go on
                traceback.print_exc()
                sys.stderr.flush()
                for fd in fds:
                    os.close(fd)
                return True
        reply = socket.socket(fileno=fds[0])
        for fd in fds[1:]:
            os.close(fd)
        _send(reply, PID, pid)
        self.children[pid] = reply
        self.fork_spare()
        return True

    def hand_over(self, payload: bytes, fds: list[int]) -> int:
        """Send a request to the spare child; return its pid. It is no longer the spare."""
        if self.spare is None:
            raise OSError(errno.ECHILD, "no spare child")
        (pid, handoff), self.spare = self.spare, None
        try:
            socket.send_fds(handoff, [payload], fds)
        finally:
            handoff.close()
        return pid

    def fork_spare(self, leave: Sequence[int] = ()) -> None:
        """Fork the child that the next request will run in; the child closes ``leave``.

        Should the fork fail (no memory, too many processes), there is no spare and the
        next request tries again: the runs going on are not disturbed.
        """
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            traceback.print_exc()
            return
        try:
            pid = os.fork()
        except OSError:
            traceback.print_exc()
            ours.close()
            theirs.close()
            return
        if pid == 0:
            ours.close()
            self.wait_as_spare(theirs, leave)
        theirs.close()
        self.spare = (pid, ours)

    def wait_as_spare(self, handoff: socket.socket, leave: Sequence[int] = ()) -> None:
        """Be the spare: drop the server's state, wait for a request, run it, exit.

        Until its request comes it ignores the owner's group signals, as the server does.
        The server's end of ``handoff`` closes when the server ends, and so does this.
        """
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in leave:  # another run's, received by the server while this was forked
                os.close(fd)
            for other in self.children.values():
                other.close()
            self.control.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            name_process(SPARE_NAME)
            self.prepare_child()
            payload, fds, _, _ = socket.recv_fds(handoff, _MAX_REQUEST, _MAX_FDS)
            handoff.close()
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        if not payload or not fds:
            os._exit(0)
        # What a run's command starts inherits its stdout and stderr (made by dup2), not
        # the reply socket, whose closing tells the owner that the run's end is known.
        for fd in fds:
            os.set_inheritable(fd, False)
        self.run_child(payload, socket.socket(fileno=fds[0]), fds[1:])

    def prepare_child(self) -> None:
        """Call ``prepare``; a failure is printed, and the run goes ahead unprepared."""
        if not self.prepare:
            return
        try:
            _entry(self.prepare)()
        except Exception:
            traceback.print_exc()
            sys.stderr.flush()

    def run_child(self, payload: bytes, reply: socket.socket, fds: list[int]) -> None:
        """Be the run's process: call the entry point, report what it returned, exit."""
        code = 1
        try:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            entry, args = pickle.loads(payload)
            result = _entry(entry)(fds, *args)
            _send(reply, RESULT, int(result))
            code = 0
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)

    def reap(self) -> None:
        """Report the exit of each ended run; a spare or an adopted orphan is only reaped."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 4096):
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            reply = self.children.pop(pid, None)
            if reply is not None:
                _send(reply, EXIT, os.waitstatus_to_exitcode(status))
                reply.close()

    def kill_runs(self) -> None:
        """SIGKILL each child (runs, the spare, adopted orphans) and the group it leads."""
        for pid in children(os.getpid()):
            # The child first, so it cannot start anything more, then everything in its group.
            for kill in (os.kill, os.killpg):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)

    def reap_killed(self, timeout: float = 1.0) -> None:
        """Reap the children :meth:`kill_runs` killed, so none is left to init as a zombie.

        Unlike :meth:`reap`, no exit is reported: the owner is gone, or sees the server
        end. An adopted process that left its group (``setsid``) is not killed; waiting for
        it is given up after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.005)


def _entry(name: str) -> Callable[..., int]:
    """Return the function named by "module:function"."""
    module, _, function = name.partition(":")
    return cast("Callable[..., int]", getattr(importlib.import_module(module), function))


def _send(reply: socket.socket, kind: bytes, value: int) -> None:
    with contextlib.suppress(OSError):  # the owner no longer waits for this run
        reply.send(_MESSAGE.pack(kind, value))


def children(parent: int) -> list[int]:
    """Return the pids of ``parent``'s child processes, from ``/proc``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return found
