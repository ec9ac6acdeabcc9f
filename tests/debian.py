"""Debian packages the test tooling needs, installed on a fresh machine when missing."""

from __future__ import annotations

import os
import shutil
import subprocess


def install(package: str) -> None:
    """``apt-get install`` the package; RuntimeError saying what to install if we cannot."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"{package} is missing; install Debian's {package} package.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
    )
