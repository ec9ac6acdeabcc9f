"""The peer: django-apscheduler's recommended ``runapscheduler`` command, as its README shows.

A ``BlockingScheduler`` with ``DjangoJobStore`` (whose start registers the listeners that
record each run as a ``DjangoJobExecution``; the old ``register_events`` is a deprecated
no-op since django-apscheduler 0.4), jobs added in code at start with
``replace_existing=True`` and ``max_instances=1``, each wrapped in
``util.close_old_connections`` and calling ``call_command``. APScheduler's defaults stay
as the README leaves them (10 worker threads, ``coalesce=True``, ``misfire_grace_time=1``).

Benchmark additions only: the jobs come from a JSON file instead of being typed out
(``{"interval": seconds, "starts": [epoch, …]}`` or ``{"cron": [[hour, minute], …]}``);
each job appends ``<job id> <epoch>`` to ``--starts`` as it begins, because
``DjangoJobExecution`` records the fire time and the finish (to 10 ms) but not the start;
"Scheduler started" is printed once the scheduler runs; SIGTERM shuts the scheduler
down from another thread (a KeyboardInterrupt raised while APScheduler submits jobs is
caught and logged by APScheduler, so SIGTERM-as-Ctrl-C would not stop a busy scheduler).
"""

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_apscheduler import util
from django_apscheduler.jobstores import DjangoJobStore

_starts_fd: int | None = None


@util.close_old_connections
def noop_job(job_id: str) -> None:
    if _starts_fd is not None:
        # One small O_APPEND write: atomic between the worker threads.
        os.write(_starts_fd, f"{job_id} {time.time():.6f}\n".encode())
    call_command("noop")


def triggers(spec: dict):
    """(job id, trigger) pairs for the jobs the benchmark asks for."""
    if "interval" in spec:
        for index, start in enumerate(spec["starts"]):
            start_date = datetime.fromtimestamp(start, UTC)
            yield f"bench-{index}", IntervalTrigger(seconds=spec["interval"], start_date=start_date)
    for index, (hour, minute) in enumerate(spec.get("cron", [])):
        yield f"bench-{index}", CronTrigger(hour=hour, minute=minute, timezone=UTC)


class Command(BaseCommand):
    help = "Run APScheduler with django-apscheduler's job store (the benchmark's peer)."

    def add_arguments(self, parser):
        parser.add_argument("--jobs", required=True, help="JSON file with the jobs to add.")
        parser.add_argument("--starts", help="File to append '<job id> <epoch>' to per start.")

    def handle(self, *args, **options):
        global _starts_fd
        if options["starts"]:
            _starts_fd = os.open(options["starts"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        scheduler = BlockingScheduler(timezone=settings.TIME_ZONE)
        scheduler.add_jobstore(DjangoJobStore(), "default")
        spec = json.loads(Path(options["jobs"]).read_text())
        for job_id, trigger in triggers(spec):
            scheduler.add_job(
                noop_job,
                trigger=trigger,
                args=[job_id],
                id=job_id,
                max_instances=1,
                replace_existing=True,
            )
        scheduler.add_listener(
            lambda event: self.stdout.write("Scheduler started"), EVENT_SCHEDULER_STARTED
        )
        signal.signal(
            signal.SIGTERM,
            lambda signum, frame: threading.Thread(target=scheduler.shutdown).start(),
        )
        try:
            scheduler.start()
        except KeyboardInterrupt:
            scheduler.shutdown()
