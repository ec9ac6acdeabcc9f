"""Run the nightly maintenance commands in sequence as one scheduled job.

One schedule entry instead of three keeps them ordered (stats are computed after stale
tokens are gone) and their output together in one run log. Each step commits its own
transaction, so a failure in a later step does not undo the work of earlier ones; the
failure still stops the batch and surfaces under the failing step's name.
"""

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run cleanup_tokens, compute_daily_stats and normalize_emails in order."
    requires_migrations_checks = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30, help="Passed to cleanup_tokens --days.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Passed to cleanup_tokens and normalize_emails.",
        )

    def handle(self, *args: Any, days: int, dry_run: bool, **options: Any) -> None:
        steps: list[tuple[str, dict[str, Any]]] = [
            ("cleanup_tokens", {"days": days, "dry_run": dry_run}),
            ("compute_daily_stats", {}),
            ("normalize_emails", {"dry_run": dry_run}),
        ]
        for name, step_options in steps:
            self.stdout.write(f"== {name} ==")
            try:
                call_command(name, stdout=self.stdout, stderr=self.stderr, **step_options)
            except CommandError as exc:
                raise CommandError(f"{name} failed: {exc}", returncode=exc.returncode) from exc
