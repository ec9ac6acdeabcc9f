"""Choosing the trial a row reports, among several of one measurement."""

from __future__ import annotations

import itertools

from bench.measure import burst_figure, catch_up_figure, median_trial


def trials_of(*figures: float | None):
    """A measurement that gives these figures, one per call, with the call's index."""
    calls = itertools.count()
    return lambda: {"figure": figures[index := next(calls)], "index": index}


def test_the_median_trial_is_reported_whole_with_every_figure_in_the_order_taken():
    result = median_trial(trials_of(3.0, 1.0, 2.0), 3, lambda r: r["figure"])
    assert result == {"figure": 2.0, "index": 2, "trials": [3.0, 1.0, 2.0]}


def test_an_incomplete_trial_counts_as_the_slowest():
    result = median_trial(trials_of(None, 5.0, 9.0), 3, lambda r: r["figure"])
    assert result["figure"] == 9.0
    assert result["trials"] == [None, 5.0, 9.0]


def test_of_an_even_number_the_lower_middle_trial_is_reported():
    assert median_trial(trials_of(4.0, 1.0, 3.0, 2.0), 4, lambda r: r["figure"])["figure"] == 2.0


def test_one_trial_is_reported_as_it_is():
    assert median_trial(trials_of(7.0), 1, lambda r: r["figure"]) == {
        "figure": 7.0,
        "index": 0,
        "trials": [7.0],
    }


def project_burst(**overrides) -> dict:
    return {
        "complete": True,
        "ready_before_fire": True,
        "recorded": {"n": 1000, "max": 1020.0},
        **overrides,
    }


def test_a_burst_trial_counts_by_its_last_recorded_run():
    assert burst_figure(project_burst()) == 1020.0


def test_a_burst_trial_without_every_run_or_started_late_has_no_figure():
    assert burst_figure(project_burst(complete=False)) is None
    assert burst_figure(project_burst(ready_before_fire=False)) is None


def test_the_peers_burst_counts_by_its_last_fire_time_recorded_run_or_missed():
    peer = project_burst(all_handled_ms=2300.0, missed=938, recorded={"n": 62, "max": 1190.0})
    assert burst_figure(peer) == 2300.0


def test_a_catch_up_trial_counts_only_if_each_schedule_ran_exactly_once():
    done = {"complete": True, "exactly_once": True, "all_recorded_s": 2.02}
    assert catch_up_figure(done) == 2.02
    assert catch_up_figure({**done, "exactly_once": False}) is None
    assert catch_up_figure({**done, "complete": False}) is None
