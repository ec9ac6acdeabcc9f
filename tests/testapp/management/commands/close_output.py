"""Writes a line, then closes the process's standard output and error, as a daemon would."""

import os

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print a line, then close file descriptors 1 and 2."

    def handle(self, *args, **options):
        self.stdout.write("before closing")
        os.close(1)
        os.close(2)
