"""Imported by a fork server as a preload: its second ``fork()`` fails, as under EAGAIN.

Only a fresh server interpreter imports this; never import it in the test process.
"""

from __future__ import annotations

import errno
import os

_real_fork = os.fork
_forks = 0


def _fork() -> int:
    global _forks
    _forks += 1
    if _forks == 2:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable (a test's failing fork)")
    return _real_fork()


os.fork = _fork
