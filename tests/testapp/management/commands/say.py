"""Writes to every channel a command has: self.stdout, self.stderr, print() and sys.stderr."""

import sys
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print a word through every output channel, optionally slowly and repeatedly."

    def add_arguments(self, parser):
        parser.add_argument("word")
        parser.add_argument("--repeat", type=int, default=1)
        parser.add_argument("--pause", type=float, default=0.0)

    def handle(self, *args, word, repeat, pause, **options):
        for index in range(repeat):
            self.stdout.write(f"stdout {word} {index}")
            print(f"print {word} {index}")
            self.stderr.write(f"stderr {word} {index}")
            print(f"sys.stderr {word} {index}", file=sys.stderr)
            time.sleep(pause)
