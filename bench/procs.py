"""The benchmark's subprocesses (daemons, the peer) and what /proc says about them.

Started and stopped by PID with the test suite's helpers (``tests/manage_py.py``).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from tests import manage_py

ROOT = manage_py.ROOT
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


def _end_with_the_bench() -> None:
    """In the child before exec: get SIGTERM if the benchmark dies without stopping it."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Service:
    """``manage.py <argv>`` on the benchmark's database, counting its SQL statements."""

    def __init__(
        self, name: str, argv: list[str], workdir: Path, settings: dict | None = None
    ) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.query_log = workdir / f"{name}.queries.json"
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "BENCH_QUERY_LOG": str(self.query_log), "PYTHONUNBUFFERED": "1"}
        if settings:  # the daemon's SCHEDULER setting (tests.settings reads it)
            env["SCHEDULER_TEST_SETTINGS"] = json.dumps(settings)
        self.spawned_at = time.time()
        self._spawned = time.monotonic()
        self.process = manage_py.spawn(argv, self._log, env, preexec_fn=_end_with_the_bench)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, text: str, timeout: float) -> float:
        """Seconds from spawn until ``text`` appears in the log (checked every 5 ms)."""
        deadline = self._spawned + timeout
        while text not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {text!r} within {timeout} s")
            time.sleep(0.005)
        return time.monotonic() - self._spawned

    def queries(self, timeout: float = 5.0) -> dict:
        """The process's statement counts as written after this call (within a second)."""
        asked = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                counts = json.loads(self.query_log.read_text())
            except FileNotFoundError:
                counts = {"at": 0.0}
            if counts["at"] >= asked:
                return counts
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} wrote no statement counts for {timeout} s")

    def stop(self, timeout: float = 40.0) -> None:
        manage_py.stop(self.process, timeout=timeout)
        manage_py.kill_group(self.pid)  # whatever its children left behind
        self._log.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on; the command name may contain spaces."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def threads_cpu_seconds(pid: int, leave_out: Iterable[int] = ()) -> float:
    """CPU time of the process's live threads but ``leave_out``, to the nanosecond.

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms), too coarse for a process that
    idles at a millisecond a second; a thread's ``schedstat`` counts nanoseconds. Time of
    threads that have exited is not counted, so this suits a process whose threads live on.
    """
    skipped = {str(tid) for tid in leave_out}
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name in skipped:
            continue
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between the listing and the read
    return total / 1e9


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: pages shared with other processes count in part."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def descendants(pid: int) -> dict[int, str]:
    """Children of ``pid``, theirs and so on, as :func:`children` lists them."""
    found = children(pid)
    for child in list(found):
        found.update(descendants(child))
    return found


def children(pid: int) -> dict[int, str]:
    """Direct children of ``pid`` with their names and command lines ("[name] cmdline").

    A child forked without an exec (the daemon's fork server) shares its parent's command
    line; its name tells it apart.
    """
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == pid:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                name = (entry / "comm").read_text().strip()
                found[int(entry.name)] = f"[{name}] {cmdline.strip()}"
        except (OSError, ValueError, IndexError):
            continue
    return found
