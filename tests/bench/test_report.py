"""The benchmark's tables: both databases side by side, from the JSON of one run each."""

from __future__ import annotations

import statistics

from bench.report import NONE, SAME, burst_row, idle_rows, side_by_side, trials


def result(pickup: str, catch_up: tuple[str, str], verdict: str) -> dict:
    return {
        "rows": [
            {
                "key": "pickup_latency",
                "title": "Pick-up",
                "cells": {"thread": pickup, "process": SAME, "peer": "never"},
                "target": "fast",
                "verdict": verdict,
            },
            {
                "key": "catch_up",
                "title": "Catch-up",
                "cells": {"thread": catch_up[0], "process": catch_up[1]},
                "target": "≤ 3 s",
                "verdict": "met",
            },
        ]
    }


def test_each_database_gets_its_columns_and_process_figures_show_where_they_differ():
    table = side_by_side(
        {
            "SQLite": result("500 ms", ("1 s", "4 s"), "met"),
            "PostgreSQL": result("5 ms", ("2 s", "2 s"), "missed"),
        }
    ).splitlines()
    assert [cell.strip() for cell in table[0].split("|")[1:-1]] == [
        "Measurement",
        "SQLite: this project",
        "SQLite: peer",
        "PostgreSQL: this project",
        "PostgreSQL: peer",
        "Target",
        "SQLite: verdict",
        "PostgreSQL: verdict",
    ]
    pickup = [cell.strip() for cell in table[2].split("|")[1:-1]]
    assert pickup == ["Pick-up", "500 ms", "never", "5 ms", "never", "fast", "met", "missed"]
    catch_up = [cell.strip() for cell in table[3].split("|")[1:-1]]
    assert catch_up[1:5] == ["thread 1 s; process 4 s", NONE, "2 s", NONE]


def test_rows_can_be_picked_and_ordered():
    results = {"SQLite": result("500 ms", ("1 s", "4 s"), "met")}
    table = side_by_side(results, keys=["catch_up", "pickup_latency"]).splitlines()
    assert [line.split("|")[1].strip() for line in table[2:]] == ["Catch-up", "Pick-up"]


def test_a_figure_taken_once_gets_no_trials_note():
    assert trials(None) == ""
    assert trials([1.5]) == ""


def test_trials_note_gives_the_count_and_the_range_in_the_row_unit():
    assert (
        trials([1020.0, 980.0, 1100.0], scale=1 / 1000) == "; median of 3 trials (0.98 to 1.10 s)"
    )


def test_trials_note_counts_incomplete_trials_apart():
    assert trials([2.5, None, 3.1]) == "; median of 3 trials (2.50 to 3.10 s), 1 incomplete"
    assert trials([None, None]) == "; median of 2 trials, 2 incomplete"


def burst(recorded_max_ms: float, figures: list[float | None]) -> dict:
    stats = {
        "n": 1000,
        "median": recorded_max_ms / 2,
        "p99": recorded_max_ms,
        "max": recorded_max_ms,
    }
    return {"recorded": stats, "complete": True, "ready_before_fire": True, "trials": figures}


def test_burst_row_judges_the_median_trial_and_shows_the_others():
    row = burst_row({"thread": burst(980.0, [1200.0, 980.0, 900.0])}, 1000)
    assert row.cells["thread"] == "0.49 / 0.98 s; median of 3 trials (0.90 to 1.20 s)"
    assert row.verdict == "met"


def idle(startups: list[float], restarts: list[float]) -> dict:
    return {
        "startup_s": statistics.median_low(startups),
        "restart_s": statistics.median_low(restarts),
        "startup_trials_s": startups,
        "restart_trials_s": restarts,
        "rss_mb": 70.0,
        "forkserver_rss_mb": 0,
        "children_rss_mb": {},
        "cpu_percent": 0.01,
        "statements": {"per_s": 0.1, "db_ms_per_s": 0.01},
    }


def test_start_up_is_judged_by_the_median_of_its_trials():
    rows = idle_rows(
        {"project": idle([1.9, 2.6, 1.8], [1.7, 1.95, 2.4]), "peer": idle([4.0], [9.0])},
        10_000,
        postgres=True,
    )
    startup = next(row for row in rows if row.key == "idle_startup")
    assert startup.cells["thread"] == (
        "1.90 s (restart 1.95 s); median of 3 trials (1.80 to 2.60 s); restart 1.70 to 2.40 s"
    )
    assert startup.cells["peer"] == "4.00 s (restart 9.00 s)"
    assert startup.verdict == "met"
