"""Leaves through sys.exit() or, with --hard, os._exit() (no cleanup at all)."""

import os
import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Exit with CODE via sys.exit, or os._exit with --hard."

    def add_arguments(self, parser):
        parser.add_argument("code", type=int)
        parser.add_argument("--hard", action="store_true")

    def handle(self, *args, code, hard, **options):
        print("leaving")
        if hard:
            os._exit(code)
        sys.exit(code)
