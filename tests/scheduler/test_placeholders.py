from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler.placeholders import PlaceholderError, check, expand, uses_placeholders

BERLIN = ZoneInfo("Europe/Berlin")
FIRE = datetime(2026, 11, 30, 23, 10, tzinfo=UTC)  # 1 December, 00:10 in Berlin
PREVIOUS = datetime(2026, 11, 29, 23, 10, tzinfo=UTC)


def expanded(*args: str) -> list[str]:
    return expand(list(args), scheduled_for=FIRE, previous_fire=PREVIOUS, zone=BERLIN)


def test_placeholders_expand_in_the_schedules_timezone():
    assert expanded("--date", "{previous_fire:%Y-%m-%d}", "--at={scheduled_for:%H:%M}") == [
        "--date",
        "2026-11-30",
        "--at=00:10",
    ]


def test_a_placeholder_without_a_format_is_iso_8601():
    assert expanded("{scheduled_for}") == ["2026-12-01T00:10:00+01:00"]


def test_doubled_braces_are_literal():
    assert expanded('{{"day": "{scheduled_for:%d}"}}') == ['{"day": "01"}']


def test_arguments_without_placeholders_are_left_alone():
    assert expanded("--days", "7", "100%") == ["--days", "7", "100%"]
    assert not uses_placeholders(["--days", "7"])
    assert uses_placeholders(["{scheduled_for}"])


def test_a_missing_previous_fire_time_expands_to_nothing():
    args = ["--since={previous_fire:%Y}"]
    assert expand(args, scheduled_for=FIRE, previous_fire=None, zone=BERLIN) == ["--since="]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("{today}", "unknown placeholder {today}"),
        ("{}", "unknown placeholder {}"),
        ("{scheduled_for.year}", "unknown placeholder {scheduled_for.year}"),
        ("{scheduled_for!r}", "is not supported"),
        ("{scheduled_for:Y-m-d}", "is not a strftime format"),
        ("{scheduled_for:%Y-{x}}", "is not a strftime format"),
        ("{scheduled_for", "expected '}' before end of string"),
        ("a } b", "Single '}' encountered"),
    ],
)
def test_bad_placeholders_are_refused_with_the_argument_named(arg, message):
    with pytest.raises(PlaceholderError) as info:
        check(["--ok", arg])
    assert repr(arg) in str(info.value)
    assert message in str(info.value)
