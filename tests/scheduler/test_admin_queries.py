"""The history pages read ``scheduler_run`` through indexes, in a fixed number of queries.

Small data, fast tests: every statement a page sends is explained, and none may scan the
run table (SQLite's planner assumes a big table without ANALYZE; PostgreSQL is told
``enable_seqscan = off``, so a plan with no usable index still says "Seq Scan").
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.history import seed
from scheduler.admin_queries import COUNT_CAP, CappedPaginator, recent_success
from scheduler.models import Run, Schedule, Status

RUNS = reverse("admin:scheduler_run_changelist")


@pytest.fixture
def seeded(db) -> list[int]:
    return seed(500, analyze=False)


def plan(sql: str, index_only: bool = False) -> list[str]:
    """Return the lines of the statement's plan.

    On PostgreSQL sequential scans are off, and with ``index_only`` every scan that reads
    the table too, so only a statement an index covers can avoid them.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            return [row[-1] for row in cursor.fetchall()]
        cursor.execute("SET LOCAL enable_seqscan = off")
        if index_only:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return [row[0] for row in cursor.fetchall()]


def scans_of_runs(sql: str, covering_ok: bool = False) -> list[str]:
    """Return the lines of the statement's plan that read the run table without an index."""
    lines = plan(sql)
    if connection.vendor == "sqlite":
        # A scan in index order is fine where a LIMIT stops it early; a bare scan, or
        # one through an index for a statement without LIMIT, reads every run.
        scan = r"SCAN scheduler_run( AS \w+)?" + ("" if " LIMIT " in sql else "( USING .*)?")
        found = [line for line in lines if re.fullmatch(scan, line)]
        return [line for line in found if not (covering_ok and "COVERING INDEX" in line)]
    return [line for line in lines if "Seq Scan on scheduler_run " in line + " "]


def assert_indexed(client, url: str, max_queries: int, covering_ok: bool = False) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code in (200, 503), url
    assert len(queries) <= max_queries, [q["sql"] for q in queries]
    for query in queries:
        sql = query["sql"]
        if sql.startswith("SELECT") and "scheduler_run" in sql:
            assert scans_of_runs(sql, covering_ok) == [], sql


@pytest.mark.parametrize(
    ("query", "max_queries"),
    [
        ("", 8),
        ("?status__exact=failed", 8),
        ("?schedule__id__exact={schedule}", 9),
        ("?q=history-07", 9),
        ("?scheduled_for__gte=2020-01-01+00:00:00%2B00:00", 8),
    ],
)
def test_run_list_reads_runs_through_indexes(admin_client, seeded, query, max_queries):
    assert_indexed(admin_client, RUNS + query.format(schedule=seeded[7]), max_queries)


def test_schedule_list_reads_last_status_and_success_rate_through_indexes(admin_client, seeded):
    assert_indexed(admin_client, reverse("admin:scheduler_schedule_changelist"), 8)


def test_timeline_reads_runs_through_indexes(admin_client, seeded):
    assert_indexed(admin_client, reverse("admin:scheduler_run_timeline"), 8)


def test_run_page_reads_its_run_by_key(admin_client, seeded):
    run = Run.objects.first()
    assert_indexed(admin_client, reverse("admin:scheduler_run_change", args=[run.pk]), 8)


def test_health_reads_runs_through_indexes(client, seeded):
    assert_indexed(client, "/scheduler/health/", 3)


def test_metrics_read_runs_through_indexes(admin_client, seeded):
    # The gauge of runs by schedule and status counts every run by definition: it may read
    # a whole index that covers it, never the table.
    assert_indexed(admin_client, "/scheduler/metrics", 14, covering_ok=True)


def test_metrics_count_every_run_from_an_index_without_reading_the_table(admin_client, seeded):
    # Counting the id, which no (schedule, status) index holds, made PostgreSQL read the
    # whole table: 180 ms against 100 ms from the index alone with a million runs. Only
    # PostgreSQL tells the two apart: every SQLite index holds the rowid, the id.
    with CaptureQueriesContext(connection) as queries:
        admin_client.get("/scheduler/metrics")
    (gauge,) = [q["sql"] for q in queries if 'FROM "scheduler_run" GROUP BY' in q["sql"]]
    lines = plan(gauge, index_only=True)
    if connection.vendor == "sqlite":
        assert any("USING COVERING INDEX" in line for line in lines), lines
    else:
        assert any("Index Only Scan" in line for line in lines), lines
        assert not any("Seq Scan" in line for line in lines), lines


def test_run_list_says_more_than_the_cap_instead_of_counting_every_run(admin_client, seeded):
    CappedPaginator.cap = 100
    try:
        page = admin_client.get(RUNS).content.decode()
        failed = admin_client.get(RUNS + "?status__exact=failed").content.decode()
    finally:
        CappedPaginator.cap = COUNT_CAP
    assert "more than 100 runs" in page
    assert "10 runs" in failed and "more than" not in failed


def test_success_rate_counts_only_each_schedules_latest_finished_runs(seeded):
    first, second = seeded[:2]
    latest = Run.objects.filter(schedule_id=first).order_by("-scheduled_for", "-id")
    statuses = list(latest.exclude(status__in=["running", "queued", "skipped"])[:3])
    rates = recent_success([first, second], 3)
    ok = sum(run.status == Status.SUCCEEDED for run in statuses)
    assert rates[first] == (ok, 3)
    assert rates[second][1] == 3
    assert (
        recent_success([Schedule.objects.create(name="new", command="noop", interval=60).pk], 3)
        == {}
    )
