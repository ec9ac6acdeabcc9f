import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from jobs.management.commands import compute_daily_stats
from jobs.models import AuthToken, DailyStat


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("nightly_batch", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def workload(now, make_user, make_token):
    """One stale token, one fresh token and one messy email."""
    user = make_user(email=" Night@Example.COM", date_joined=now - timedelta(days=1))
    make_token(user, created_at=now - timedelta(days=45))
    make_token(user, created_at=now - timedelta(days=1))
    return user


def test_runs_every_step_in_order_with_headers(workload):
    output = run()

    assert output.splitlines() == [
        "== cleanup_tokens ==",
        "Deleted 1 tokens older than 30 days.",
        "== compute_daily_stats ==",
        "Stats for 2026-11-23: 1 new users, 1 tokens created, 1 active tokens.",
        "== normalize_emails ==",
        "Processed 1 users, 1 changed so far",
        "Normalised 1 of 1 emails.",
    ]
    assert AuthToken.objects.count() == 1
    assert DailyStat.objects.get().active_tokens == 1
    workload.refresh_from_db()
    assert workload.email == "night@example.com"


def test_dry_run_is_forwarded_to_cleanup_and_normalize(workload):
    output = run("--dry-run")

    assert "Would delete 1 tokens older than 30 days (dry run)." in output
    assert "Would normalise 1 of 1 emails." in output
    assert AuthToken.objects.count() == 2
    assert get_user_model().objects.get().email == " Night@Example.COM"


def test_days_option_is_forwarded_to_cleanup(workload):
    output = run("--days", "60")

    assert "Deleted 0 tokens older than 60 days." in output
    assert AuthToken.objects.count() == 2


def test_failing_step_stops_the_batch_and_is_named(workload):
    with pytest.raises(CommandError, match=r"^cleanup_tokens failed: --days must be zero"):
        run("--days", "-1")

    assert not DailyStat.objects.exists()


def test_failing_step_keeps_its_returncode(workload, monkeypatch):
    def fail(*args, **options):
        raise CommandError("warehouse unreachable", returncode=3)

    monkeypatch.setattr(compute_daily_stats.Command, "handle", fail)

    with pytest.raises(CommandError) as excinfo:
        run()

    assert str(excinfo.value) == "compute_daily_stats failed: warehouse unreachable"
    assert excinfo.value.returncode == 3
