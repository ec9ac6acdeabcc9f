"""Lowercase and trim every user's email address.

Addresses typed with stray capitals or spaces defeat exact-match lookups (login, password
reset, deduplication). Users are streamed in primary-key order and written back per batch,
so memory stays flat on large tables and the progress lines show how far a run got.
"""

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class Command(BaseCommand):
    help = "Lowercase and strip whitespace from all user email addresses."
    requires_migrations_checks = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Users to load and save at a time."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change but save nothing."
        )

    def handle(self, *args: Any, batch_size: int, dry_run: bool, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, got {batch_size}.")
        User = get_user_model()
        processed = changed = 0
        with transaction.atomic():
            users = User.objects.order_by("pk").only("pk", "email")
            for batch in batched(users.iterator(chunk_size=batch_size), batch_size):
                to_save = []
                for user in batch:
                    normalised = user.email.strip().lower()
                    if normalised != user.email:
                        user.email = normalised
                        to_save.append(user)
                if to_save and not dry_run:
                    User.objects.bulk_update(to_save, ["email"])
                processed += len(batch)
                changed += len(to_save)
                self.stdout.write(f"Processed {processed} users, {changed} changed so far")
        verb = "Would normalise" if dry_run else "Normalised"
        self.stdout.write(f"{verb} {changed} of {processed} emails.")
