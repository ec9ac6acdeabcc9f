"""``python -m bench [--quick]``: run every measurement, print one table, write JSON.

The benchmark owns its database: a new SQLite file in a temporary folder, or, when
``DATABASE_URL`` points at PostgreSQL, a new database ``bench_<pid>`` on that server,
dropped at the end. It never touches the project's ``db.sqlite3`` or a test database.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

from .procs import ROOT

DEFAULT_JSON = ROOT / "bench" / "results.json"


def own_database(url: str | None, workdir: Path) -> tuple[str, Callable[[], None]]:
    """A database URL only the benchmark uses, and how to get rid of it afterwards."""
    if not url or urlsplit(url).scheme.startswith("sqlite"):
        return f"sqlite:///{workdir / 'bench.sqlite3'}", lambda: None
    import psycopg

    name = f"bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlsplit(url)._replace(path=f"/{name}").geturl(), drop


def database_name(connection) -> str:
    if connection.vendor == "sqlite":
        return f"SQLite {connection.Database.sqlite_version}"
    major, minor = divmod(connection.pg_version, 10000)
    return f"PostgreSQL {major}.{minor}"


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
    }


def source_state() -> dict:
    """Which code was measured (read-only git queries)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True
            )
        except OSError:
            return ""
        return out.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "modified": git("status", "--porcelain").splitlines(),
    }


class Progress:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[bench {time.monotonic() - self.began:5.0f} s] {text}", file=sys.stderr, flush=True)


def measure_all(sizes, workdir: Path, say: Progress) -> dict:
    from . import measure

    m: dict = {}
    say("overhead and statements per run, in-process")
    m["overhead_per_run"] = measure.overhead(sizes)
    m["statements_per_run"] = m["overhead_per_run"].pop("statements")

    m["lateness_one_schedule"] = {}
    for kind in ("thread", "process", "peer"):
        say(f"start lateness, one schedule every 1 s: {kind}")
        first = [time.time() + 1.0]
        m["lateness_one_schedule"][kind] = measure.lateness(
            kind, first, 1.0, sizes.single_window, sizes.settle, workdir
        )

    m["lateness_load"] = {}
    count, period = sizes.load_schedules, sizes.load_period
    for kind in ("thread", "process", "peer"):
        say(f"start lateness, {count} schedules every {period:g} s: {kind}")
        base = time.time() + sizes.lead
        first = [base + index * period / count for index in range(count)]
        m["lateness_load"][kind] = measure.lateness(
            kind, first, period, sizes.load_window, sizes.settle, workdir
        )

    m["same_second_burst"] = {}
    for kind in ("thread", "process", "peer"):
        say(f"{sizes.burst_schedules} schedules due in the same second: {kind}")
        # Far enough ahead that the scheduler is up first (its start-up with as many
        # schedules was just timed).
        lead = max(sizes.lead, 2 * m["lateness_load"][kind]["ready_s"] + 1)
        m["same_second_burst"][kind] = measure.median_trial(
            lambda kind=kind, lead=lead: measure.burst(kind, sizes.burst_schedules, lead, workdir),
            sizes.trials,
            measure.burst_figure,
        )

    m["catch_up"] = {}
    for kind in ("thread", "process"):
        say(f"catch-up of {sizes.catch_up_schedules} after a 24 h outage: {kind}")
        m["catch_up"][kind] = measure.median_trial(
            lambda kind=kind: measure.catch_up(
                kind, sizes.catch_up_schedules, workdir, sizes.peer_catch_up_wait
            ),
            sizes.trials,
            measure.catch_up_figure,
        )
    say(f"catch-up of {sizes.catch_up_schedules} after a 24 h outage: peer (once: it runs none)")
    m["catch_up"]["peer"] = measure.catch_up(
        "peer", sizes.catch_up_schedules, workdir, sizes.peer_catch_up_wait
    )

    say("statements per fire time with 1, 2 and 3 daemons")
    m["more_daemons"] = measure.more_daemons((1, 2, 3), sizes, workdir)

    m["idle"] = {}
    for kind in ("project", "peer"):
        say(f"idle cost with {sizes.idle_schedules} schedules: {kind}")
        m["idle"][kind] = measure.idle(sizes, kind, workdir)
    m["pickup_latency"] = m["idle"]["project"].pop("pickup_ms")
    m["history"] = history_measurement(sizes, say)
    return m


def history_measurement(sizes, say: Progress) -> dict:
    from . import history, measure

    history.clear()
    measure.reset()
    say(f"history: {sizes.history_runs:,} runs seeded, then each page timed and pruning")
    result = history.measure(sizes.history_runs)
    history.clear()
    measure.reset()
    return result


def on_both_databases(args: argparse.Namespace) -> int:
    """Run the benchmark in a process per database; print both tables, write both results."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="scheduler-bench-both-") as workdir:
        for name, wrapper in (
            ("SQLite", []),
            ("PostgreSQL", [sys.executable, "-m", "tests.postgres"]),
        ):
            out = Path(workdir) / f"{name}.json"
            command = [*wrapper, sys.executable, "-m", "bench", "--json-out", str(out)]
            command += ["--quick"] * args.quick + ["--keep"] * args.keep
            command += [f"--history={args.history}"] if args.history else []
            env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
            status = subprocess.run(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL
            ).returncode
            if status:
                print(f"The benchmark on {name} failed (exit status {status}).", file=sys.stderr)
                return status
            results[name] = json.loads(out.read_text())
    from . import report

    for name, result in results.items():
        print(f"{name}:\n\n{result['table']}\n{report.legend(result['meta'])}\n")
    print(
        f"Both databases, this project (thread) beside the peer:\n\n{report.side_by_side(results)}"
    )
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps({"databases": results}, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and windows: the whole path in seconds"
    )
    parser.add_argument(
        "--history",
        type=int,
        metavar="ROWS",
        help="only the history measurement, with this many runs (the full run seeds 1,000,000)",
    )
    parser.add_argument(
        "--both",
        action="store_true",
        help="run on SQLite, then on a throwaway PostgreSQL server (as the tests start one)",
    )
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (logs, SQLite file) afterwards"
    )
    parser.add_argument(
        "--summary",
        type=Path,
        metavar="JSON",
        help="print the side-by-side table of a --both run's JSON, and nothing else",
    )
    args = parser.parse_args(argv)
    if args.summary:
        from . import report

        print(report.side_by_side(json.loads(args.summary.read_text())["databases"]))
        return 0
    if args.both:
        return on_both_databases(args)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every daemon and drop the database.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    say = Progress()
    workdir = Path(tempfile.mkdtemp(prefix="scheduler-bench-"))
    url, drop_database = own_database(os.environ.get("DATABASE_URL"), workdir)
    # Every process of the benchmark, including the fork server and the daemons, sees these.
    os.environ.update(DJANGO_SETTINGS_MODULE="bench.settings", DATABASE_URL=url)
    for leftover in ("SCHEDULER_TEST_SETTINGS", "BENCH_QUERY_LOG"):
        os.environ.pop(leftover, None)
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from . import measure, report

        # The in-process runs log like the daemon does, to a file rather than the terminal.
        log = open(workdir / "bench-process.log", "a")
        for handler in logging.getLogger("scheduler").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log)
        call_command("migrate", verbosity=0)
        sizes = measure.QUICK if args.quick else measure.FULL
        meta = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "database": database_name(connection),
            "versions": {p: version(p) for p in ("Django", "APScheduler", "django-apscheduler")},
            "machine": machine(),
            "source": source_state(),
            "sizes": dataclasses.asdict(sizes),
        }
        size = "quick" if args.quick else "full"
        say(f"database: {meta['database']} ({size} run), work folder {workdir}")
        if args.history:
            sizes = dataclasses.replace(sizes, history_runs=args.history)
            measurements = {"history": history_measurement(sizes, say)}
        else:
            measurements = measure_all(sizes, workdir, say)
        rows = report.build(measurements, sizes, meta["database"]) if not args.history else []
        rows += report.history_rows(measurements["history"])
        table = report.markdown(rows)
        meta["seconds"] = round(time.monotonic() - say.began, 1)
        meta["machine"]["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
        print(table)
        print(report.legend(meta))
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "measurements": measurements,
                    "rows": [dataclasses.asdict(row) | {"ratio": row.ratio()} for row in rows],
                    "table": table,
                },
                indent=2,
                default=str,
            )
        )
        say(f"wrote {args.json_out}")
        return 0
    finally:
        from django.db import connections

        from scheduler.executor import stop_fork_server

        connections.close_all()
        stop_fork_server()
        drop_database()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
