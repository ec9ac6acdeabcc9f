"""Starts a long-lived child process, prints its pid and returns without waiting."""

import subprocess

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start `sleep SECONDS` in the background and exit."

    def add_arguments(self, parser):
        parser.add_argument("seconds", type=int)

    def handle(self, *args, seconds, **options):
        child = subprocess.Popen(["sleep", str(seconds)])
        self.stdout.write(f"child pid {child.pid}")
