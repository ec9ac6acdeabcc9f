"""Debian packages the test tooling needs, installed on a fresh machine when missing."""

from __future__ import annotations

import os
import shutil
import subprocess


def install(package: str) -> None:
    """``apt-get install`` the package; RuntimeError saying why if we cannot (with the
    end of apt's output when apt itself failed)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"{package} is missing; install Debian's {package} package.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
