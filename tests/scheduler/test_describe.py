import pytest

from scheduler.describe import describe_cron, describe_interval, relative


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("30 3 * * 1-5", "At 03:30, Monday through Friday"),
        ("0 0 * * 7", "At 00:00, only on Sunday"),
        ("@hourly", "Every hour"),
    ],
)
def test_cron_in_words(expression, words):
    assert describe_cron(expression) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "Every second"),
        (15, "Every 15 seconds"),
        (60, "Every minute"),
        (7200, "Every 2 hours"),
        (86400, "Every day"),
        (90, "Every 90 seconds"),
    ],
)
def test_interval_in_words(seconds, words):
    assert describe_interval(seconds) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (-3, "0 s"),
        (42, "42 s"),
        (300, "5 min"),
        (7800, "2 h 10 min"),
        (7200, "2 h"),
        (86400, "1 day"),
        (3 * 86400 + 5, "3 days"),
    ],
)
def test_relative_time_is_short(seconds, words):
    assert relative(seconds) == words
