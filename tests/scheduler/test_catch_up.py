"""The catch-up decision, a pure function of a schedule, its last claimed fire time and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given

from scheduler.catch_up import CATCH_UP_LIMIT, CatchUp, Outcome, decide
from scheduler.models import Schedule
from tests.scheduler.timing_cases import PROPERTY_SETTINGS, cases

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def schedule(**fields: object) -> Schedule:
    """An unsaved schedule created at T0, every 10 minutes."""
    fields.setdefault("interval", 600)
    return Schedule(name="s", command="say", created_at=T0, **fields)


def test_nothing_missed_since_creation_runs_nothing():
    assert decide(schedule(), None, T0 + timedelta(minutes=9)) == CatchUp(Outcome.NOTHING_MISSED)


def test_nothing_missed_hands_on_the_next_fire_time_it_met():
    assert decide(schedule(), None, T0 + timedelta(minutes=9)).next_fire == T0 + timedelta(
        minutes=10
    )
    daily = Schedule(name="s", command="say", cron="10 0 * * *", created_at=T0)
    assert decide(daily, None, T0 + timedelta(hours=1)).next_fire == datetime(
        2026, 11, 25, 0, 10, tzinfo=UTC
    )


def test_a_schedule_created_after_now_hands_on_no_next_fire_time():
    # Its first fire time after creation (02:00) is not the first after now (01:00).
    hourly = Schedule(name="s", command="say", cron="0 * * * *", created_at=T0)
    decision = decide(hourly, None, T0 - timedelta(minutes=25))
    assert (decision.outcome, decision.next_fire) == (Outcome.NOTHING_MISSED, None)


@PROPERTY_SETTINGS
@given(cases())
def test_the_next_fire_time_handed_on_is_the_first_after_now(case):
    timing, now, since = case
    created = Schedule(
        name="s", command="say", cron=timing.cron, timezone=timing.timezone, created_at=since
    )
    decision = decide(created, None, now, timing)
    missed = timing.latest_at_or_before(now, since)
    assert (decision.outcome is Outcome.NOTHING_MISSED) == (missed is None)
    if missed is None:
        assert decision.next_fire == timing.next_fire_time(now)
    else:
        assert decision.next_fire is None


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


def test_each_runs_every_missed_fire_time_oldest_first():
    decision = decide(schedule(catch_up_runs="each"), None, T0 + timedelta(minutes=35))
    assert decision.fire_times == [T0 + timedelta(minutes=m) for m in (10, 20, 30)]
    assert decision.left_out == 0


def test_each_counts_from_the_last_claimed_fire_time_so_a_restart_resumes():
    last_claimed = T0 + timedelta(minutes=10)
    decision = decide(schedule(catch_up_runs="each"), last_claimed, T0 + timedelta(minutes=35))
    assert decision.fire_times == [T0 + timedelta(minutes=20), T0 + timedelta(minutes=30)]


def test_each_keeps_inside_the_catch_up_window():
    decision = decide(
        schedule(catch_up_runs="each", catch_up_window=20 * 60), None, T0 + timedelta(minutes=40)
    )
    assert decision.fire_times == [T0 + timedelta(minutes=m) for m in (20, 30, 40)]


def test_each_runs_the_newest_missed_fire_times_up_to_the_limit_and_names_the_rest():
    now = T0 + timedelta(minutes=10 * (CATCH_UP_LIMIT + 5))
    decision = decide(schedule(catch_up_runs="each"), None, now)
    assert len(decision.fire_times) == CATCH_UP_LIMIT
    assert decision.fire_times[0] == T0 + timedelta(minutes=60)
    assert decision.fire_times[-1] == now
    assert decision.left_out == 5
    assert decision.left_out_first == T0 + timedelta(minutes=10)
    assert decision.left_out_last == T0 + timedelta(minutes=50)


def test_each_with_a_daily_cron_gives_one_fire_time_per_missed_day():
    daily = Schedule(
        name="s", command="say", cron="10 0 * * *", catch_up_runs="each", created_at=T0
    )
    decision = decide(daily, T0 - timedelta(days=1), T0 + timedelta(days=3))
    assert decision.fire_times == [
        datetime(2026, 11, day, 0, 10, tzinfo=UTC) for day in (25, 26, 27)
    ]
