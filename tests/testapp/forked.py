"""Entry points the fork server tests have it call in a forked child."""

from __future__ import annotations

import os
import signal
import sys
import time


def returns(fds: list[int], value: int) -> int:
    """Return ``value`` at once."""
    return value


def writes_pid_and_sleeps(fds: list[int], seconds: float) -> int:
    """Write this process's pid to ``fds[0]``, close it, then sleep."""
    os.write(fds[0], str(os.getpid()).encode())
    os.close(fds[0])
    time.sleep(seconds)
    return 0


def raises(fds: list[int]) -> int:
    """Fail with an exception, its traceback on ``fds[0]`` (as stderr)."""
    os.dup2(fds[0], 2)
    sys.stderr = open(2, "w", closefd=False)
    raise RuntimeError("broken entry point")


def kills_itself(fds: list[int]) -> int:
    """End by SIGKILL before returning."""
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def counts_inheritable_fds(fds: list[int]) -> int:
    """Return how many descriptors above stderr a program exec'd from here would inherit."""
    return sum(
        1 for name in os.listdir("/proc/self/fd") if int(name) > 2 and _inheritable(int(name))
    )


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # the listing's own descriptor, closed by now
        return False


# Set by an owner that forked its server from itself, which its runs inherit.
INHERITED_SERVER = None


def forks_through_the_inherited_server(fds: list[int]) -> int:
    """Run ``returns(9)`` through the server object inherited from the owner; its result."""
    child = INHERITED_SERVER.fork("tests.testapp.forked:returns", (9,), [])
    child.join(30)
    INHERITED_SERVER.stop()
    return child.result


def commands_known_at_fork(fds: list[int]) -> int:
    """Return 1 if the server had listed the management commands before forking this."""
    from django.core.management import get_commands

    return get_commands.cache_info().currsize


PREPARED_IN: list[int] = []


def prepare() -> None:
    """Note the process prepared (the server has each child call this before its run)."""
    PREPARED_IN.append(os.getpid())


def prepare_fails() -> None:
    """Fail as a broken ``prepare`` would."""
    raise RuntimeError("broken prepare")


def times_prepared_here(fds: list[int]) -> int:
    """Return how often this very process was prepared."""
    return PREPARED_IN.count(os.getpid())
