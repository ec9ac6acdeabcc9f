"""Crashes the interpreter with a segmentation fault."""

import ctypes

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Dereference a NULL pointer."

    def handle(self, *args, **options):
        print("about to crash", flush=True)
        ctypes.string_at(0)
