"""The APScheduler adapter: the trigger's fire times and its trip through the job store."""

import pickle
from datetime import UTC, datetime, timedelta

from scheduler.apscheduler_adapter import TimingTrigger
from scheduler.timing import Timing

ANCHOR = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_next_fire_follows_the_previous_one_even_when_it_is_already_past():
    trigger = TimingTrigger(Timing(interval=60, anchor=ANCHOR))
    late_now = ANCHOR + timedelta(minutes=10)
    # APScheduler walks these past fire times and coalesces them into one late run
    # instead of dropping them as misfires.
    assert trigger.get_next_fire_time(ANCHOR + timedelta(minutes=1), late_now) == (
        ANCHOR + timedelta(minutes=2)
    )


def test_first_fire_is_after_now():
    trigger = TimingTrigger(Timing(cron="*/5 * * * *"))
    now = datetime(2026, 11, 24, 10, 3, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == datetime(2026, 11, 24, 10, 5, tzinfo=UTC)


def test_trigger_survives_the_job_store_round_trip():
    trigger = TimingTrigger(Timing(cron="30 2 * * *", timezone="Europe/Berlin"))
    restored = pickle.loads(pickle.dumps(trigger))
    assert restored.timing == trigger.timing
    assert str(restored) == "cron[30 2 * * * Europe/Berlin]"


def test_no_fire_time_left_in_the_calendar_ends_the_job_instead_of_raising():
    trigger = TimingTrigger(Timing(interval=30 * 86400, anchor=datetime(9999, 11, 1, tzinfo=UTC)))
    now = datetime(9999, 12, 31, 12, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) is None
