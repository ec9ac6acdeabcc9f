"""``manage.py`` child processes for end-to-end tests and the benchmark.

Each runs in its own session with its output in a log file, and is stopped by its PID:
a signal, then SIGKILL to its process group if it has not exited within the timeout.
Nothing here imports Django or pytest, so the benchmark can use it too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent


def spawn(argv: list[str], log: BinaryIO, env: dict[str, str], **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *argv],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **popen,
    )


def stop(process: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal the process and wait; kill its whole group if it outlives ``timeout``."""
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            process.wait()
    return process.returncode


def kill_group(pid: int) -> None:
    """SIGKILL whatever is left in the process group (the session is the process's own)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
