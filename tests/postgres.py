"""Run a command against a throwaway PostgreSQL server: ``python -m tests.postgres CMD…``.

Installs Debian's ``postgresql`` package when the server binaries are missing (CI starts
on a fresh machine), creates a cluster in a temporary folder, starts it on 127.0.0.1 on a
free port, runs the command with ``DATABASE_URL`` pointing at it, and stops the server it
started (``pg_ctl stop`` signals the PID in the cluster's ``postmaster.pid``) whatever the
command did. Exits with the command's status.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests import debian


def server_binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        try:
            debian.install("postgresql")
        except RuntimeError as exc:
            sys.exit(str(exc))
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_owner(owner: str | None) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the data folder's owner."""
    return ["runuser", "-u", owner, "--"] if owner else []


def pg_ctl(bin_dir: Path, owner: str | None, data: Path, *args: str) -> None:
    subprocess.run(
        [*as_owner(owner), str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


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
    # In the cluster's own configuration, so a test can stop and start it identically.
    with open(data / "postgresql.conf", "a") as config:
        config.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{base}'\nmax_connections = 200\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        )
    log = base / "server.log"
    try:
        pg_ctl(bin_dir, owner, data, "-l", str(log), "start")
        pid = (data / "postmaster.pid").read_text().split()[0]
        url = f"postgres://scheduler@127.0.0.1:{port}/postgres"
        print(f"PostgreSQL {bin_dir.parent.name} on 127.0.0.1:{port} (pid {pid})", flush=True)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            # For tests that take the server away and bring it back (conftest's PostgresServer).
            "SCHEDULER_TEST_PG": json.dumps(
                {"bin": str(bin_dir), "owner": owner, "data": str(data), "log": str(log)}
            ),
        }
        return subprocess.call(argv, env=env)
    finally:
        if (data / "postmaster.pid").exists():
            pg_ctl(bin_dir, owner, data, "-m", "fast", "stop")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
