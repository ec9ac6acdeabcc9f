"""Writes a lot of output, optionally with bytes that are not UTF-8."""

import os
import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Write BYTES bytes to stdout; --binary adds undecodable bytes on file descriptor 1."

    def add_arguments(self, parser):
        parser.add_argument("bytes", type=int)
        parser.add_argument("--binary", action="store_true")

    def handle(self, *args, bytes, binary, **options):
        line = "x" * 1023 + "\n"
        sys.stdout.write("FIRST LINE\n")
        for _ in range(bytes // 1024):
            sys.stdout.write(line)
        sys.stdout.write("LAST LINE\n")
        if binary:
            sys.stdout.flush()
            os.write(1, b"\xff\xfe\x00 not utf-8\n")
