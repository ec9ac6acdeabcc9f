"""The command every benchmark run executes: whatever it costs is the scheduler's overhead."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Do nothing (the benchmark's unit of work)."

    def handle(self, *args, **options):
        pass
