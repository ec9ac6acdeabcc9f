import argparse
import os
import signal

from django.core.management.base import BaseCommand

from scheduler.daemon import SchedulerDaemon


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return seconds


class Command(BaseCommand):
    help = "Run the scheduler daemon: execute the database's schedules until stopped."

    def add_arguments(self, parser):
        parser.add_argument(
            "--poll-interval",
            type=positive_seconds,
            help="Seconds between checks for schedule changes and queued runs.",
        )

    def handle(self, *args, **options):
        daemon = SchedulerDaemon(poll_interval=options["poll_interval"])

        def on_signal(signum, frame):
            # A second Ctrl-C stops running commands at once instead of after the grace.
            daemon.request_stop(immediate=daemon.stopping.is_set())

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        daemon.run()
        if daemon.unfinished:
            # Thread-executor runs cannot be stopped; do not let them hold the exit.
            os._exit(0)
