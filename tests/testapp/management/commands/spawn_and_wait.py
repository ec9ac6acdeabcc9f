"""Starts a grandchild, writes where both are to a file, then waits: a run to kill."""

import os
import subprocess
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start `sleep SECONDS`, write 'PID PGID CHILD_PID' to PATH, sleep SECONDS."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("seconds", type=int)

    def handle(self, *args, path, seconds, **options):
        child = subprocess.Popen(["sleep", str(seconds)])
        with open(path + ".tmp", "w") as file:
            file.write(f"{os.getpid()} {os.getpgrp()} {child.pid}")
        os.rename(path + ".tmp", path)
        print("started", flush=True)
        time.sleep(seconds)
