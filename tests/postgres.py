"""Run a command against a throwaway PostgreSQL server: ``python -m tests.postgres CMD…``.

Installs Debian's ``postgresql`` package when the server binaries are missing (CI starts
on a fresh machine), creates a cluster in a temporary folder, starts it on 127.0.0.1 on a
free port, runs the command with ``DATABASE_URL`` pointing at it, and stops the server it
started, by its PID, whatever the command did. Exits with the command's status.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def server_binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            sys.exit("PostgreSQL server binaries are missing; install Debian's postgresql.")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
            check=True,
            env=env,
        )
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_owner(owner: str | None) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the data folder's owner."""
    return ["runuser", "-u", owner, "--"] if owner else []


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit(__doc__)
    bin_dir = server_binaries()
    owner = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="scheduler-pg-"))
    data = base / "data"
    if owner:
        shutil.chown(base, owner)
    port = free_port()
    subprocess.run(
        [
            *as_owner(owner),
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "scheduler",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [
            *as_owner(owner),
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(base),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(base / "server.log", "wb"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.stderr.write((base / "server.log").read_text())
                    sys.exit("PostgreSQL did not start")
                time.sleep(0.1)
        url = f"postgres://scheduler@127.0.0.1:{port}/postgres"
        print(
            f"PostgreSQL {bin_dir.parent.name} on 127.0.0.1:{port} (pid {server.pid})", flush=True
        )
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SCHEDULER_TEST_PG_PID": str(server.pid),
            "SCHEDULER_TEST_PG_DATA": str(data),
        }
        return subprocess.call(argv, env=env)
    finally:
        server.send_signal(signal.SIGINT)  # "fast" shutdown
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
