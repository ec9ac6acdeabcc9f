"""Who runs a command: the process recorded on its run, and its pid namespace."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


def local_pid_namespace() -> str:
    """Return this process's pid namespace ("" where /proc does not say)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    """The process that runs a command, recorded on its run.

    A run whose owner's heartbeat went stale (or whose process is gone) is resolved as
    ``interrupted`` by any live daemon, so no run stays ``running`` forever.
    """

    host: str
    pid: int
    heartbeat_id: int | None = None

    @classmethod
    def this_process(cls, heartbeat_id: int | None = None) -> Owner:
        """Return the owner that is this process, under ``heartbeat_id`` if given."""
        return cls(socket.gethostname(), os.getpid(), heartbeat_id)

    def fields(self) -> dict[str, str | int | None]:
        """Return the run fields that record this owner."""
        return {"host": self.host, "pid": self.pid, "heartbeat_id": self.heartbeat_id}
