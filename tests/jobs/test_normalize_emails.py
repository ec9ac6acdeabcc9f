import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

User = get_user_model()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("normalize_emails", *args, stdout=out)
    return out.getvalue()


def emails() -> list[str]:
    return list(User.objects.order_by("pk").values_list("email", flat=True))


def test_lowercases_and_strips_emails(make_user):
    make_user(email="  Alice@Example.COM ")
    make_user(email="bob@example.com")

    output = run()

    assert output.splitlines()[-1] == "Normalised 1 of 2 emails."
    assert emails() == ["alice@example.com", "bob@example.com"]


def test_dry_run_reports_but_keeps_emails(make_user):
    make_user(email="Alice@Example.com")
    make_user(email="BOB@example.com ")

    output = run("--dry-run")

    assert output.splitlines()[-1] == "Would normalise 2 of 2 emails."
    assert emails() == ["Alice@Example.com", "BOB@example.com "]


def test_prints_a_progress_line_per_batch(make_user):
    for email in ["A@x.io", "b@x.io", "c@x.io", "D@x.io", "E@x.io"]:
        make_user(email=email)

    output = run("--batch-size", "2")

    assert output.splitlines() == [
        "Processed 2 users, 1 changed so far",
        "Processed 4 users, 2 changed so far",
        "Processed 5 users, 3 changed so far",
        "Normalised 3 of 5 emails.",
    ]
    assert emails() == ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io"]


def test_default_batch_size_is_500(db):
    User.objects.bulk_create(User(username=f"u{i}", email=f"u{i}@x.io") for i in range(501))

    output = run()

    assert output.splitlines()[:2] == [
        "Processed 500 users, 0 changed so far",
        "Processed 501 users, 0 changed so far",
    ]


def test_batches_without_changes_are_not_saved(make_user):
    make_user(email="a@x.io")
    make_user(email="b@x.io")

    with CaptureQueriesContext(connection) as queries:
        run()

    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


@pytest.mark.parametrize("size", ["0", "-5"])
def test_batch_size_below_one_is_rejected(db, size):
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        run(f"--batch-size={size}")
