"""Hypothesis strategies for schedule arithmetic: zones, cron expressions and instants
near daylight-saving changes, shared by the properties of timing and of catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, settings
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
