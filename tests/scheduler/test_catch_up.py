"""The catch-up decision, a pure function of a schedule, its last claimed fire time and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.catch_up import CatchUp, Outcome, decide
from scheduler.models import Schedule

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def schedule(**fields: object) -> Schedule:
    """An unsaved schedule created at T0, every 10 minutes."""
    fields.setdefault("interval", 600)
    return Schedule(name="s", command="say", created_at=T0, **fields)


def test_nothing_missed_since_creation_runs_nothing():
    assert decide(schedule(), None, T0 + timedelta(minutes=9)) == CatchUp(Outcome.NOTHING_MISSED)


def test_the_latest_missed_fire_time_runs():
    decision = decide(schedule(), None, T0 + timedelta(minutes=35))
    assert decision == CatchUp(Outcome.RUN, T0 + timedelta(minutes=30))
    assert decision.fire_time == T0 + timedelta(minutes=30)


def test_missed_fire_times_count_from_the_last_claimed_one():
    last_claimed = T0 + timedelta(minutes=30)
    assert decide(schedule(), last_claimed, T0 + timedelta(minutes=35)).fire_time is None
    assert decide(schedule(), last_claimed, T0 + timedelta(minutes=45)).fire_time == (
        T0 + timedelta(minutes=40)
    )


def test_catch_up_off_runs_nothing_and_counts_what_was_missed():
    decision = decide(schedule(catch_up=False), None, T0 + timedelta(hours=1, seconds=5))
    assert (decision.outcome, decision.missed_count, decision.fire_time) == (
        Outcome.CATCH_UP_OFF,
        6,
        None,
    )


def test_a_missed_fire_time_outside_the_window_runs_nothing():
    decision = decide(schedule(catch_up_window=60), None, T0 + timedelta(minutes=12))
    assert decision == CatchUp(Outcome.OUTSIDE_WINDOW, T0 + timedelta(minutes=10))
    assert decision.fire_time is None
