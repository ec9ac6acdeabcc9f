"""Claim a fire time and run it: here, or through the task backend's workers.

The entry point of a fire time (APScheduler's job function is ``run_schedule``): claim
it in the database, then execute the run in this process (:mod:`scheduler.execution`)
or hand it to the task backend (:mod:`scheduler.tasks`), whose worker executes it the
same way.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from django.utils import timezone

from . import tasks
from .conf import conf
from .execution import (
    PERSIST_RETRY_FOR,
    end,
    ended_count,
    execute_run,
    finished,
    holding,
    persist,
    record_unrecorded,
    run_queued,
)
from .models import Reason, Run, Status
from .owners import Owner

__all__ = [
    # Re-exported for callers of the runner from before the split (the daemon, for now).
    "PERSIST_RETRY_FOR",
    "end",
    "ended_count",
    "execute_run",
    "fail_lost_tasks",
    "finished",
    "hand_over",
    "holding",
    "persist",
    "record_unrecorded",
    "run_queued",
    "run_schedule",
    "start_claimed",
]

logger = logging.getLogger("scheduler.runner")


def run_schedule(
    schedule_id: int,
    scheduled_for: datetime | None = None,
    reason: str = Reason.SCHEDULED,
    *,
    owner: Owner | None = None,
    stop: threading.Event | None = None,
    stopping: threading.Event | None = None,
    if_free: bool = False,
) -> Run | None:
    """Claim ``scheduled_for`` for the schedule and run it; None if it was not ours to run.

    This is also the function APScheduler's job refers to; called without a fire time
    (by a stock APScheduler executor) it runs as if the schedule fired this instant.
    ``stop`` stops the command; ``stopping`` (a daemon shutting down) releases the fire
    time instead if it is set before the command starts (see ``execute_run``). With
    ``if_free``, a fire time met while the schedule is busy is not taken (``Run.claim``).
    """
    if scheduled_for is None:
        scheduled_for = timezone.now()
    owner = owner or Owner.this_process()
    run = Run.claim(schedule_id, scheduled_for, reason, owner=owner, if_free=if_free)
    if run is None:
        logger.debug("Fire time %s of schedule %s already claimed", scheduled_for, schedule_id)
        return None
    return start_claimed(run, stop=stop, stopping=stopping)


def start_claimed(
    run: Run, *, stop: threading.Event | None = None, stopping: threading.Event | None = None
) -> Run:
    """Go on with a run just claimed: log a skip, hand a task over, or execute it here."""
    if run.status == Status.SKIPPED:
        logger.info("Run %s of %s skipped: the previous run is still going", run.pk, run.schedule)
        return run
    if run.status == Status.QUEUED:
        return hand_over(run)
    return execute_run(run, stop=stop, stopping=stopping)


def hand_over(run: Run, *, retry_before: datetime | None = None) -> Run:
    """Give a ``tasks`` run to the task backend, or fail it if the executor is unusable."""
    try:
        tasks.task_for(conf.TASKS_BACKEND, conf.TASKS_QUEUE)
    except Exception as exc:
        logger.error("Run %s of %s cannot be handed over: %r", run.pk, run.schedule, exc)
        message = f"[scheduler] Not queued: the tasks executor is not usable here: {exc!r}\n"
        end(run, lambda: run.fail(message, expected=Status.QUEUED))
        return run
    return tasks.hand_over(run, retry_before=retry_before)


def fail_lost_tasks(enqueued_before: datetime) -> list[Run]:
    """Fail queued ``tasks`` runs whose task the backend ended or lost (see scheduler.tasks)."""
    lost = tasks.fail_lost(enqueued_before)
    for run in lost:
        finished(run)
    return lost
