"""Sleeps, printing a line first: a slow or hanging command."""

import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Sleep SECONDS after printing a line."

    def add_arguments(self, parser):
        parser.add_argument("seconds", type=float)

    def handle(self, *args, seconds, **options):
        print(f"sleeping {seconds}", flush=True)
        time.sleep(seconds)
        print("woke up")
