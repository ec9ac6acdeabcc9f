"""Raises KeyboardInterrupt from inside the command."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Raise KeyboardInterrupt."

    def handle(self, *args, **options):
        raise KeyboardInterrupt
