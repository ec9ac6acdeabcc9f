"""Imported once by the fork server so that every run's child starts with Django ready.

The executor module is imported too: each child unpickles its entry point from there, and
importing it afresh in every child cost more than half of a run's overhead.

The fork server lives exactly as long as the process that started it (the daemon, a
task worker, a terminal's ``schedules run``): it exits when that process's end of its
"alive" pipe closes, however that process died, and on its way out it kills the process
group of every run it forked. It also adopts what runs leave behind (a child
subreaper), so those are reaped rather than left as zombies, and killed with the rest.
"""

import atexit
import ctypes
import os
import signal
import warnings

import django

django.setup()

import scheduler.executor  # noqa: E402, F401

_PR_SET_CHILD_SUBREAPER = 36


def children(parent: int) -> list[int]:
    """The pids of ``parent``'s child processes, from ``/proc``."""
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


def kill_runs(fork_server: int) -> None:
    """SIGKILL each child of the fork server and its process group (a run leads one)."""
    if os.getpid() != fork_server:
        return
    for pid in children(fork_server):
        # The child first, so it cannot start anything more, then everything in its group.
        for kill in (os.kill, os.killpg):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _adopt_orphans() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError):
        pass


_adopt_orphans()
# Adopted orphans are reaped by the fork server's own loop, which would warn about each.
warnings.filterwarnings("ignore", message="forkserver: waitpid returned unexpected pid")
# The fork server ends with its owner, not on a signal meant for the owner's group: a
# terminal's hang-up or a group's SIGTERM would otherwise end the runs before the owner
# could stop them gracefully. Each run's child restores the default handlers.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
atexit.register(kill_runs, os.getpid())
