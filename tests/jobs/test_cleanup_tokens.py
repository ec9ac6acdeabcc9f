import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from jobs.models import AuthToken


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("cleanup_tokens", *args, stdout=out)
    return out.getvalue()


def test_deletes_only_tokens_older_than_30_days_by_default(now, make_token):
    make_token(created_at=now - timedelta(days=31))
    make_token(created_at=now - timedelta(days=30, seconds=1))
    kept = make_token(created_at=now - timedelta(days=29))

    output = run()

    assert output == "Deleted 2 tokens older than 30 days.\n"
    assert list(AuthToken.objects.all()) == [kept]


def test_token_exactly_at_cutoff_is_kept(now, make_token):
    make_token(created_at=now - timedelta(days=30))

    assert run() == "Deleted 0 tokens older than 30 days.\n"
    assert AuthToken.objects.count() == 1


def test_days_option_moves_the_cutoff(now, make_token):
    make_token(created_at=now - timedelta(days=8))
    kept = make_token(created_at=now - timedelta(days=6))

    output = run("--days", "7")

    assert output == "Deleted 1 tokens older than 7 days.\n"
    assert list(AuthToken.objects.all()) == [kept]


def test_age_is_measured_from_the_current_time(time_machine, now, make_token):
    make_token()
    time_machine.move_to(now + timedelta(days=31))

    run()

    assert not AuthToken.objects.exists()


def test_dry_run_counts_but_keeps_tokens(now, make_token):
    make_token(created_at=now - timedelta(days=40))
    make_token(created_at=now - timedelta(days=35))

    output = run("--dry-run")

    assert output == "Would delete 2 tokens older than 30 days (dry run).\n"
    assert AuthToken.objects.count() == 2


def test_negative_days_is_rejected(now, make_token):
    make_token(created_at=now - timedelta(days=40))

    with pytest.raises(CommandError, match="--days must be zero or more"):
        run("--days", "-1")
    assert AuthToken.objects.count() == 1


def test_non_integer_days_is_rejected(db):
    with pytest.raises(CommandError, match="invalid int value"):
        run("--days", "thirty")
