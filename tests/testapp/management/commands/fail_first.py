"""Fails the first N times it runs, then succeeds: counts its runs in a file."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Fail the first N runs (counted in COUNTER, a file), then succeed."

    def add_arguments(self, parser):
        parser.add_argument("failures", type=int)
        parser.add_argument("counter")

    def handle(self, *args, failures, counter, **options):
        path = Path(counter)
        count = int(path.read_text() or 0) if path.exists() else 0
        path.write_text(str(count + 1))
        if count < failures:
            raise CommandError(f"failing on purpose, run {count + 1} of {failures}")
        self.stdout.write(f"succeeded on run {count + 1}")
