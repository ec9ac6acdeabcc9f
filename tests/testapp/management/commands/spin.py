"""Loops forever without sleeping or yielding: only a kill stops it."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Busy-loop forever."

    def handle(self, *args, **options):
        print("spinning", flush=True)
        while True:
            pass
