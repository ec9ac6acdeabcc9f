"""Schedule arithmetic against fire times as Debian's cron(8) produces them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.timing import Timing, TimingError, expand_cron

BERLIN = ZoneInfo("Europe/Berlin")
ADELAIDE = ZoneInfo("Australia/Adelaide")  # UTC+09:30, +10:30 in summer


def local(zone: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=zone, fold=fold)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# (expression, timezone, after, the fire times cron produces next)
CRON_TABLE = [
    pytest.param(
        "0 0 * * 7",
        "UTC",
        utc(2026, 11, 24),
        [utc(2026, 11, 29), utc(2026, 12, 6)],
        id="7-is-sunday",
    ),
    pytest.param(
        "0 0 * * 0",
        "UTC",
        utc(2026, 11, 24),
        [utc(2026, 11, 29), utc(2026, 12, 6)],
        id="0-is-sunday",
    ),
    pytest.param(
        "0 12 * * sun",
        "UTC",
        utc(2026, 11, 24),
        [utc(2026, 11, 29, 12)],
        id="day-name",
    ),
    pytest.param(
        "0 9 * * 1-5",
        "UTC",
        utc(2026, 11, 27, 10),
        [utc(2026, 11, 30, 9), utc(2026, 12, 1, 9)],
        id="weekday-range-skips-weekend",
    ),
    pytest.param(
        "0 0 13 * 5",
        "UTC",
        utc(2026, 11, 24),
        [
            utc(2026, 11, 27),
            utc(2026, 12, 4),
            utc(2026, 12, 11),
            utc(2026, 12, 13),
            utc(2026, 12, 18),
        ],
        id="dom-and-dow-restricted-means-either",
    ),
    pytest.param(
        "0 0 */2 * 5",
        "UTC",
        utc(2026, 11, 24),
        [utc(2026, 11, 27), utc(2026, 12, 11), utc(2026, 12, 25)],
        id="dom-starting-with-star-means-both",
    ),
    pytest.param(
        "0 0 13 * *",
        "UTC",
        utc(2026, 11, 24),
        [utc(2026, 12, 13), utc(2027, 1, 13)],
        id="dom-only",
    ),
    pytest.param(
        "0 0 31 * *",
        "UTC",
        utc(2026, 11, 24),
        [utc(2026, 12, 31), utc(2027, 1, 31), utc(2027, 3, 31)],
        id="month-ends",
    ),
    pytest.param(
        "0 0 29 2 *",
        "UTC",
        utc(2026, 3, 1),
        [utc(2028, 2, 29), utc(2032, 2, 29)],
        id="leap-day",
    ),
    pytest.param(
        "10-50/20 * * * *",
        "UTC",
        utc(2026, 11, 24, 8),
        [
            utc(2026, 11, 24, 8, 10),
            utc(2026, 11, 24, 8, 30),
            utc(2026, 11, 24, 8, 50),
            utc(2026, 11, 24, 9, 10),
        ],
        id="range-with-step",
    ),
    pytest.param(
        "*/15 * * * *",
        "UTC",
        utc(2026, 11, 24, 8, 7),
        [utc(2026, 11, 24, 8, 15), utc(2026, 11, 24, 8, 30)],
        id="star-step",
    ),
    pytest.param(
        "0 0 1 jan,jul *",
        "UTC",
        utc(2026, 11, 24),
        [utc(2027, 1, 1), utc(2027, 7, 1)],
        id="month-names",
    ),
    pytest.param("@weekly", "UTC", utc(2026, 11, 24), [utc(2026, 11, 29)], id="weekly"),
    pytest.param("@yearly", "UTC", utc(2026, 11, 24), [utc(2027, 1, 1)], id="yearly"),
    pytest.param(
        "@hourly",
        "UTC",
        utc(2026, 11, 24, 8, 0),
        [utc(2026, 11, 24, 9)],
        id="strictly-after",
    ),
    pytest.param(
        "30 3 * * *",
        "Europe/Berlin",
        utc(2026, 11, 24),
        [local(BERLIN, 2026, 11, 24, 3, 30)],
        id="evaluated-in-the-schedule-timezone",
    ),
    # Daylight saving, Europe/Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00.
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        local(BERLIN, 2026, 3, 28, 12),
        [local(BERLIN, 2026, 3, 29, 3, 0), local(BERLIN, 2026, 3, 30, 2, 30)],
        id="berlin-fixed-time-in-skipped-hour-runs-at-the-jump",
    ),
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        local(BERLIN, 2026, 10, 24, 12),
        [local(BERLIN, 2026, 10, 25, 2, 30), local(BERLIN, 2026, 10, 26, 2, 30)],
        id="berlin-fixed-time-in-repeated-hour-runs-once",
    ),
    pytest.param(
        "15 * * * *",
        "Europe/Berlin",
        local(BERLIN, 2026, 3, 29, 0),
        [
            local(BERLIN, 2026, 3, 29, 0, 15),
            local(BERLIN, 2026, 3, 29, 1, 15),
            local(BERLIN, 2026, 3, 29, 3, 15),
        ],
        id="berlin-wildcard-hour-skips-the-missing-hour",
    ),
    pytest.param(
        "15 * * * *",
        "Europe/Berlin",
        local(BERLIN, 2026, 10, 25, 1),
        [
            local(BERLIN, 2026, 10, 25, 1, 15),
            local(BERLIN, 2026, 10, 25, 2, 15),
            local(BERLIN, 2026, 10, 25, 2, 15, fold=1),
            local(BERLIN, 2026, 10, 25, 3, 15),
        ],
        id="berlin-wildcard-hour-runs-in-both-repeated-hours",
    ),
    # Australia/Adelaide: 2026-04-05 03:00 -> 02:00, 2026-10-04 02:00 -> 03:00.
    pytest.param(
        "30 2 * * *",
        "Australia/Adelaide",
        local(ADELAIDE, 2026, 10, 3, 12),
        [local(ADELAIDE, 2026, 10, 4, 3, 0), local(ADELAIDE, 2026, 10, 5, 2, 30)],
        id="adelaide-fixed-time-in-skipped-hour-runs-at-the-jump",
    ),
    pytest.param(
        "30 2 * * *",
        "Australia/Adelaide",
        local(ADELAIDE, 2026, 4, 4, 12),
        [local(ADELAIDE, 2026, 4, 5, 2, 30), local(ADELAIDE, 2026, 4, 6, 2, 30)],
        id="adelaide-fixed-time-in-repeated-hour-runs-once",
    ),
    pytest.param(
        "15 * * * *",
        "Australia/Adelaide",
        local(ADELAIDE, 2026, 4, 5, 1),
        [
            local(ADELAIDE, 2026, 4, 5, 1, 15),
            local(ADELAIDE, 2026, 4, 5, 2, 15),
            local(ADELAIDE, 2026, 4, 5, 2, 15, fold=1),
            local(ADELAIDE, 2026, 4, 5, 3, 15),
        ],
        id="adelaide-wildcard-hour-runs-in-both-repeated-hours",
    ),
    pytest.param(
        "15 * * * *",
        "Australia/Adelaide",
        local(ADELAIDE, 2026, 10, 4, 1),
        [local(ADELAIDE, 2026, 10, 4, 1, 15), local(ADELAIDE, 2026, 10, 4, 3, 15)],
        id="adelaide-wildcard-hour-skips-the-missing-hour",
    ),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), CRON_TABLE)
def test_cron_fire_times_match_debian_cron(expression, zone, after, expected):
    timing = Timing(cron=expression, timezone=zone)
    fires = timing.next_fire_times(after, len(expected))
    assert fires == [moment.astimezone(UTC) for moment in expected]
    assert all(fire.tzinfo is UTC for fire in fires)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "5 fields"),
        ("* * * * * *", "5 fields"),
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("0 0 32 * *", "day"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day-of-week"),
        ("0 0 L * *", "day of month"),
        ("0 0 * * 5#2", "day of week"),
        ("@reboot", "Unknown alias"),
        ("", "5 fields"),
    ],
)
def test_bad_cron_expressions_are_refused_with_the_reason(expression, message):
    with pytest.raises(TimingError, match=message):
        expand_cron(expression)


def test_aliases_expand_to_their_crontab_meaning():
    assert expand_cron("@daily") == expand_cron("@midnight") == "0 0 * * *"
    assert expand_cron("@annually") == "0 0 1 1 *"
    assert expand_cron("  0   3 * *  mon ") == "0 3 * * mon"


def test_unknown_timezone_is_refused():
    with pytest.raises(TimingError, match="Unknown timezone"):
        Timing(cron="@daily", timezone="Mars/Olympus")


@pytest.mark.parametrize("interval", [0, -5])
def test_non_positive_interval_is_refused(interval):
    with pytest.raises(TimingError, match="positive"):
        Timing(interval=interval, anchor=utc(2026, 1, 1))


def test_interval_above_a_year_is_refused():
    Timing(interval=365 * 86400, anchor=utc(2026, 1, 1))
    with pytest.raises(TimingError, match="at most 31536000 seconds"):
        Timing(interval=10**12, anchor=utc(2026, 1, 1))


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory"])
def test_host_dependent_timezone_is_refused(zone):
    with pytest.raises(TimingError, match="depends on each host"):
        Timing(cron="@daily", timezone=zone)


@pytest.mark.parametrize(
    "timing",
    [
        Timing(interval=365 * 86400, anchor=utc(9999, 6, 1)),
        Timing(cron="0 0 1 1 *", timezone="Pacific/Chatham"),
    ],
    ids=["interval", "cron"],
)
def test_fire_times_end_at_the_end_of_the_calendar_instead_of_raising(timing):
    now = utc(9999, 12, 1)
    assert timing.next_fire_times(now, 3) == []
    assert timing.count_between(now - timedelta(days=30), now) == 0


def test_exactly_one_of_cron_and_interval():
    with pytest.raises(TimingError, match="exactly one"):
        Timing()
    with pytest.raises(TimingError, match="exactly one"):
        Timing(cron="@daily", interval=60, anchor=utc(2026, 1, 1))


def test_interval_keeps_its_cadence_from_the_anchor():
    anchor = utc(2026, 11, 24, 10, 0, 0)
    timing = Timing(interval=90, anchor=anchor)
    # However late the previous run finished, the grid stays anchor + k * 90 s.
    assert timing.next_fire_times(anchor + timedelta(seconds=100.5), 3) == [
        anchor + timedelta(seconds=180),
        anchor + timedelta(seconds=270),
        anchor + timedelta(seconds=360),
    ]
    assert timing.next_fire_time(anchor - timedelta(days=1)) == anchor + timedelta(seconds=90)
    assert timing.next_fire_time(anchor + timedelta(seconds=180)) == anchor + timedelta(seconds=270)


def test_latest_missed_fire_time_is_the_last_one_up_to_now():
    timing = Timing(cron="*/15 * * * *")
    since, now = utc(2026, 11, 24, 1, 0), utc(2026, 11, 24, 5, 7, 30)
    assert timing.latest_at_or_before(now, since) == utc(2026, 11, 24, 5, 0)
    assert timing.latest_at_or_before(utc(2026, 11, 24, 5, 0), since) == utc(2026, 11, 24, 5, 0)
    assert timing.latest_at_or_before(utc(2026, 11, 24, 1, 14), since) is None
    assert timing.count_between(since, now) == 16


def test_latest_missed_fire_time_includes_one_moved_by_dst():
    timing = Timing(cron="30 2 * * *", timezone="Europe/Berlin")
    now = local(BERLIN, 2026, 3, 29, 3, 5)
    since = local(BERLIN, 2026, 3, 28, 12)
    assert timing.latest_at_or_before(now, since) == local(BERLIN, 2026, 3, 29, 3, 0)


def test_latest_missed_interval_fire_time():
    anchor = utc(2026, 11, 24, 10)
    timing = Timing(interval=60, anchor=anchor)
    assert timing.latest_at_or_before(anchor + timedelta(seconds=59), anchor) is None
    assert timing.latest_at_or_before(anchor + timedelta(seconds=185), anchor) == (
        anchor + timedelta(seconds=180)
    )
    since = anchor + timedelta(seconds=180)
    assert timing.latest_at_or_before(anchor + timedelta(seconds=185), since) is None


def test_times_must_be_aware():
    with pytest.raises(ValueError, match="aware"):
        Timing(cron="@daily").next_fire_time(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("timing", "before", "previous"),
    [
        (
            Timing(cron="10 0 * * *", timezone="Europe/Berlin"),
            datetime(2026, 11, 30, 23, 10, tzinfo=UTC),
            datetime(2026, 11, 29, 23, 10, tzinfo=UTC),
        ),
        (
            Timing(cron="0 3 * * *", timezone="Europe/Berlin"),
            datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # the day the clocks go forward
            datetime(2026, 3, 28, 2, 0, tzinfo=UTC),
        ),
        (
            Timing(interval=3600, anchor=datetime(2026, 1, 1, tzinfo=UTC)),
            datetime(2026, 1, 1, 1, 0, tzinfo=UTC),  # the first fire: the period from creation
            datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        ),
        (
            Timing(interval=3600, anchor=datetime(2026, 1, 1, tzinfo=UTC)),
            datetime(2026, 1, 1, 5, 30, tzinfo=UTC),
            datetime(2026, 1, 1, 5, 0, tzinfo=UTC),
        ),
    ],
)
def test_previous_fire_time_is_the_last_one_strictly_before(timing, before, previous):
    assert timing.previous_fire_time(before) == previous
