"""Raises CommandError with a chosen returncode."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Fail with CommandError(returncode=CODE)."

    def add_arguments(self, parser):
        parser.add_argument("code", type=int)

    def handle(self, *args, code, **options):
        self.stdout.write("about to fail")
        raise CommandError(f"failing on purpose with {code}", returncode=code)
