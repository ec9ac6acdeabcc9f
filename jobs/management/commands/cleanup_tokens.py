"""Delete API tokens past their lifetime.

Stale tokens are a liability if leaked and bloat the table the auth backend hits on every
request, so they are purged nightly rather than checked for expiry at request time.
"""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from jobs.models import AuthToken


class Command(BaseCommand):
    help = "Delete auth tokens older than a given number of days."
    requires_migrations_checks = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=30, help="Age in days beyond which tokens are deleted."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the tokens but delete nothing."
        )

    def handle(self, *args: Any, days: int, dry_run: bool, **options: Any) -> None:
        if days < 0:
            raise CommandError(f"--days must be zero or more, got {days}.")
        cutoff = timezone.now() - timedelta(days=days)
        with transaction.atomic():
            stale = AuthToken.objects.filter(created_at__lt=cutoff)
            if dry_run:
                count = stale.count()
                self.stdout.write(f"Would delete {count} tokens older than {days} days (dry run).")
            else:
                count, _ = stale.delete()
                self.stdout.write(f"Deleted {count} tokens older than {days} days.")
