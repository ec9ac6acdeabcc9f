"""Raises an exception a command should never raise."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Raise an uncaught ZeroDivisionError."

    def handle(self, *args, **options):
        self.stdout.write("dividing")
        return str(1 / 0)
