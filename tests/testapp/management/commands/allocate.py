"""Allocates memory in 64 MiB steps until the allocation fails."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Allocate memory until it fails."

    def handle(self, *args, **options):
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024 * 1024))
            print(f"holding {len(hoard) * 64} MiB", flush=True)
