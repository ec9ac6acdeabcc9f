"""Has a required option, like a command that must be told how far back to reach."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print the number of days it is given with the required --days."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, required=True)

    def handle(self, *args, days, **options):
        self.stdout.write(f"days {days}")
