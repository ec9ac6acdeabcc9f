"""Properties of schedule arithmetic over many zones, expressions and instants.

Whatever the zone and the daylight-saving change, the next fire time is after ``now``,
fire times ascend, and the forward and the reverse search find the same fire times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise, takewhile

from hypothesis import given

from scheduler.timing import Timing
from tests.scheduler.timing_cases import PROPERTY_SETTINGS, cases


def forward(timing: Timing, since: datetime, now: datetime) -> list[datetime]:
    """Fire times in ``(since, now]`` and the first one after ``now``, walking forward."""
    fires = []
    for fire in timing.iter_after(since):
        fires.append(fire)
        if fire > now:
            break
    return fires


@PROPERTY_SETTINGS
@given(cases())
def test_next_fire_times_are_after_now_and_ascend(case):
    timing, now, _ = case
    fires = timing.next_fire_times(now, 4)
    assert fires, "a valid expression always fires again"
    assert fires[0] > now
    assert all(earlier < later for earlier, later in pairwise(fires))


@PROPERTY_SETTINGS
@given(cases())
def test_walking_forward_from_any_instant_finds_the_same_fire_times(case):
    timing, now, since = case
    walked = forward(timing, since, now)
    assert walked[-1] > now
    assert walked[-1] == timing.next_fire_time(now)
    assert all(since < fire for fire in walked)
    assert all(earlier < later for earlier, later in pairwise(walked))


@PROPERTY_SETTINGS
@given(cases())
def test_latest_fire_time_is_the_last_one_walking_forward(case):
    timing, now, since = case
    due = list(takewhile(lambda fire: fire <= now, islice(timing.iter_after(since), 10_000)))
    assert timing.latest_at_or_before(now, since) == (due[-1] if due else None)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_fixed_time_job_after_fall_back_next_runs_the_following_day():
    timing = Timing(cron="30 2 * * *", timezone="Europe/Berlin")
    # 01:00 UTC is 02:00 CET, the repeated hour's second pass; 02:30 CEST already ran.
    assert timing.next_fire_times(utc(2024, 10, 27, 1, 0), 2) == [
        utc(2024, 10, 28, 1, 30),
        utc(2024, 10, 29, 1, 30),
    ]


def test_latest_fire_time_in_the_last_second_before_fall_back():
    timing = Timing(cron="30 * * * *", timezone="Europe/Berlin")
    now = utc(2024, 10, 27, 0, 59, 59)
    assert timing.latest_at_or_before(now, now - timedelta(days=1)) == utc(2024, 10, 27, 0, 30)


def test_fixed_time_job_after_a_half_hour_fall_back_runs_once():
    timing = Timing(cron="0 3 * * *", timezone="Pacific/Chatham")
    # 14:00 UTC is 02:45 again on 2015-04-05; 03:00 +13:45 ran at 13:15 UTC.
    assert timing.next_fire_times(utc(2015, 4, 4, 14, 0), 2) == [
        utc(2015, 4, 5, 14, 15),
        utc(2015, 4, 6, 14, 15),
    ]


def test_latest_fire_time_in_the_last_second_before_a_half_hour_fall_back():
    timing = Timing(cron="30 * * * *", timezone="Australia/Lord_Howe")
    now = utc(2015, 4, 4, 14, 59, 59)  # 01:59:59 +11:00; then 01:30 +10:30
    assert timing.latest_at_or_before(now, now - timedelta(days=1)) == utc(2015, 4, 4, 14, 30)
