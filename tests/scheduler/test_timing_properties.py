"""Properties of schedule arithmetic over many zones, expressions and instants.

Whatever the zone and the daylight-saving change, the next fire time is after ``now``,
fire times ascend, and the forward and the reverse search find the same fire times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import islice, pairwise, takewhile
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler.timing import Timing, TimingError, _zone_names

KEY_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute daylight-saving change
    "Pacific/Chatham",  # UTC+12:45, +13:45 in summer
    "Australia/Adelaide",
    "Asia/Kathmandu",
    "America/St_Johns",
    "America/Santiago",
    "Europe/London",
    "UTC",
]
ALL_ZONES = sorted(_zone_names())

MINUTES = ["0", "30", "45", "15", "59", "*", "*/15", "*/7", "5,35", "0-10"]
HOURS = ["*", "2", "3", "1", "0", "23", "1-3", "*/2", "2,3", "2-4"]
DAYS = ["*", "*", "1", "15", "28", "29", "31", "1-7", "*/10"]
MONTHS = ["*", "*", "3", "10", "3,10,11", "*/2", "2", "4"]
WEEKDAYS = ["*", "*", "0", "7", "1-5", "sun", "6", "mon,fri"]

PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """UTC offset changes of the zone between 2015 and 2030, to the second."""
    zone = ZoneInfo(zone_name)
    found = []
    day = datetime(2015, 1, 1, tzinfo=UTC)
    offset = day.astimezone(zone).utcoffset()
    while day.year < 2030:
        following = day + timedelta(days=1)
        if following.astimezone(zone).utcoffset() != offset:
            low, high = day, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high.replace(microsecond=0))
            offset = following.astimezone(zone).utcoffset()
        day = following
    return tuple(found)


zones = st.one_of(st.sampled_from(KEY_ZONES), st.sampled_from(ALL_ZONES))
expressions = st.one_of(
    st.tuples(
        st.sampled_from(["0", "30", "15", "45", "59", "*", "*/15", "*/20", "10,40"]),
        st.sampled_from(["1", "2", "3", "0", "*", "1-3", "2,3", "*/3"]),
    ).map(lambda fields: f"{fields[0]} {fields[1]} * * *"),
    st.tuples(
        st.sampled_from(MINUTES),
        st.sampled_from(HOURS),
        st.sampled_from(DAYS),
        st.sampled_from(MONTHS),
        st.sampled_from(WEEKDAYS),
    ).map(" ".join),
)
random_instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)


@st.composite
def instants(draw: st.DrawFn, zone_name: str) -> datetime:
    """A random instant, or one within a few hours of a daylight-saving change."""
    changes = transitions(zone_name)
    if changes and draw(st.booleans()):
        near = draw(st.sampled_from(changes))
        seconds = draw(st.integers(-3 * 3600, 3 * 3600) | st.integers(-60, 3660))
        micro = draw(st.sampled_from([0, 0, 1, 500_000, 999_999]))
        return near + timedelta(seconds=seconds, microseconds=micro)
    return draw(random_instants)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Timing, datetime, datetime]:
    """A cron timing, ``now``, and a ``since`` up to two days before it."""
    zone_name = draw(zones)
    expression = draw(expressions)
    try:
        timing = Timing(cron=expression, timezone=zone_name)
    except TimingError:
        assume(False)
    now = draw(instants(zone_name))
    since = now - draw(st.timedeltas(timedelta(0), timedelta(days=2)))
    return timing, now, since


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
