import io
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.models import DailyStat

DAY = date(2026, 11, 23)
DAY_START = datetime(2026, 11, 23, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("compute_daily_stats", *args, stdout=out)
    return out.getvalue()


def test_counts_users_and_tokens_within_the_day(now, make_user, make_token):
    for joined in (DAY_START - timedelta(seconds=1), DAY_START, DAY_END - timedelta(seconds=1)):
        make_user(date_joined=joined)
    make_user(date_joined=DAY_END)
    make_token(created_at=DAY_START - timedelta(days=3))
    make_token(created_at=DAY_START)
    make_token(created_at=DAY_END - timedelta(seconds=1))
    make_token(created_at=DAY_END)

    output = run("--date", "2026-11-23")

    assert output == "Stats for 2026-11-23: 2 new users, 2 tokens created, 3 active tokens.\n"
    stat = DailyStat.objects.get()
    assert (stat.date, stat.new_users, stat.tokens_created, stat.active_tokens) == (DAY, 2, 2, 3)


def test_defaults_to_yesterday(now, make_user):
    make_user(date_joined=now - timedelta(days=1))

    output = run()

    assert output.startswith("Stats for 2026-11-23: 1 new users,")
    assert DailyStat.objects.get().date == DAY


def test_default_day_is_yesterday_in_the_current_timezone(now, db):
    with timezone.override("Pacific/Auckland"):  # NOW is already 25 November there
        run()

    assert DailyStat.objects.get().date == date(2026, 11, 24)


def test_day_boundaries_are_local_midnights(now, make_user):
    make_user(date_joined=datetime(2026, 11, 22, 11, 30, tzinfo=UTC))  # 23 Nov 00:30 NZDT
    make_user(date_joined=datetime(2026, 11, 22, 20, 0, tzinfo=UTC))  # 23 Nov 09:00 NZDT
    make_user(date_joined=datetime(2026, 11, 23, 11, 30, tzinfo=UTC))  # 24 Nov 00:30 NZDT

    with timezone.override("Pacific/Auckland"):
        output = run("--date", "2026-11-23")

    assert "2 new users" in output


def test_rerun_updates_the_existing_row(now, make_token):
    make_token(created_at=DAY_START)
    run("--date", "2026-11-23")
    make_token(created_at=DAY_START + timedelta(hours=1))

    output = run("--date", "2026-11-23")

    assert "2 tokens created" in output
    stat = DailyStat.objects.get()
    assert (stat.tokens_created, stat.active_tokens) == (2, 2)


@pytest.mark.parametrize("value", ["2026-13-01", "23/11/2026", "yesterday", ""])
def test_invalid_date_is_rejected(db, value):
    with pytest.raises(CommandError, match="expected a valid date as YYYY-MM-DD"):
        run(f"--date={value}")
    assert not DailyStat.objects.exists()
