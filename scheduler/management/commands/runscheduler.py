import argparse
import logging
import os
import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from scheduler.sqlite import use_immediate_transactions

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = {0: logging.WARNING, 1: logging.INFO}


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

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--poll-interval",
            type=positive_seconds,
            help="Seconds between checks for schedule changes and queued runs.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Imported here, after the system checks: they explain a missing app in
        # INSTALLED_APPS, which importing the daemon would report as a traceback.
        from scheduler.daemon import SchedulerDaemon

        show_logs(options["verbosity"])
        use_immediate_transactions()
        daemon = SchedulerDaemon(poll_interval=options["poll_interval"], fork_server_from_here=True)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # A second Ctrl-C stops running commands at once instead of after the grace.
            daemon.request_stop(immediate=daemon.stopping.is_set())

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        daemon.run()
        if daemon.unfinished:
            # Thread-executor runs cannot be stopped; do not let them hold the exit.
            os._exit(0)


def configured(logger: logging.Logger) -> bool:
    """Whether the project's logging set-up sends ``logger``'s records anywhere."""
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            return True
        if not current.propagate:  # the project cut it off on purpose
            return True
        current = current.parent
    return False


def show_logs(verbosity: int) -> None:
    """Log to the terminal, as ``runserver`` does, unless the project's LOGGING decides.

    A project without ``LOGGING`` for ``scheduler`` (a stock ``startproject`` site) would
    otherwise print nothing below WARNING. ``verbosity`` sets the level: 0 warnings,
    1 each run's start and end, 2 and 3 debug detail.
    """
    logger = logging.getLogger("scheduler")
    ours = [h for h in logger.handlers if getattr(h, "scheduler_console", False)]
    if not ours and configured(logger):
        return
    if not ours:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.scheduler_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(LEVELS.get(verbosity, logging.DEBUG))
