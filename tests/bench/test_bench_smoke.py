"""``python -m bench --quick`` runs every measurement's code path and writes the JSON.

No timing is asserted: this only guards the benchmark against rotting as the product
changes. The benchmark makes its own database (a new SQLite file, or ``bench_<pid>`` on the
PostgreSQL server of a ``tests.postgres`` run), so it never touches the test database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.manage_py import ROOT

pytestmark = pytest.mark.e2e

MEASUREMENTS = {
    "overhead_per_run",
    "statements_per_run",
    "lateness_one_schedule",
    "lateness_load",
    "same_second_burst",
    "pickup_latency",
    "idle",
    "catch_up",
    "more_daemons",
    "history",
}


@pytest.mark.timeout(420)
def test_quick_benchmark_runs_every_measurement(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "SCHEDULER_TEST_SETTINGS")
    }
    if not env.get("DATABASE_URL", "").startswith("postgres"):
        env.pop("DATABASE_URL", None)
    out = tmp_path / "r.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--json-out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = bench.communicate(timeout=360)
    except subprocess.TimeoutExpired:
        bench.terminate()  # the bench stops its daemons and drops its database on SIGTERM
        stdout, stderr = bench.communicate(timeout=60)
        pytest.fail(f"python -m bench --quick took over 360 s:\n{stderr[-5000:]}")
    assert bench.returncode == 0, stderr[-5000:]
    results = json.loads(out.read_text())
    assert MEASUREMENTS <= results["measurements"].keys()
    keys = {row["key"] for row in results["rows"]}
    assert keys >= MEASUREMENTS - {"idle", "history"}
    assert {"history_run list", "history_metrics", "history_prune"} <= keys
    assert "| Measurement" in stdout
