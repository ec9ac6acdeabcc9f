"""Leaves an orphan: a shell starts `sleep` in the background and exits at once."""

import subprocess

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start `sleep SECONDS` through a shell that exits, orphaning the sleep."

    def add_arguments(self, parser):
        parser.add_argument("seconds", type=float)

    def handle(self, *args, seconds, **options):
        subprocess.run(["sh", "-c", f"sleep {seconds} &"], check=True)
        self.stdout.write("orphan left")
