"""The benchmark's tables: both databases side by side, from the JSON of one run each."""

from __future__ import annotations

from bench.report import NONE, SAME, side_by_side


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
