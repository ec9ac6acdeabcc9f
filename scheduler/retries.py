"""Retry a failed or timed-out run: each attempt its own ``Run``, queued in the database.

A retry is a ``queued`` run with ``reason="retry"``, the attempt number, a link to the
first attempt, and ``run_after``, the time it may start. It lives in the database, so it
survives a daemon restart, and it starts once across daemons like any queued run
(``Run.start``). A retry keeps its first attempt's fire time and arguments.

The first retry waits the schedule's ``retry_delay``; each later one waits twice as long
as the one before, never more than ``MAX_RETRY_DELAY`` (one day). A retry waiting does
not make an ``overlap="skip"`` schedule busy; a retry running does, as any run, and a
retry due while its schedule is busy waits until it is not.

Mail and the monitor's failure ping are about the last attempt only: an attempt that is
retried is marked notified (``Run.claim_notification``) before ``run_finished`` is sent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from .models import MAX_RETRY_DELAY, Reason, Run, Status

logger = logging.getLogger("scheduler.runner")

RETRIED_STATUSES = frozenset({Status.FAILED, Status.TIMED_OUT})


def retry_delay(first_delay: int, attempt: int) -> timedelta:
    """How long attempt ``attempt`` (2 for the first retry) waits after the one before."""
    retry_number = max(attempt - 1, 1)
    return timedelta(seconds=min(first_delay * 2 ** min(retry_number - 1, 32), MAX_RETRY_DELAY))


def plan_retry(run: Run, now: datetime | None = None) -> Run | None:
    """Queue the next attempt of an ended ``run`` if its schedule retries it; else None.

    Creating the same attempt twice is refused by the database (one run per first
    attempt and attempt number), so whoever ends a run plans its retry once.
    """
    schedule = run.schedule
    if schedule is None or run.status not in RETRIED_STATUSES or run.attempt > schedule.retries:
        return None
    now = now or timezone.now()
    attempt = run.attempt + 1
    retry = Run.plan(
        schedule,
        Reason.RETRY,
        run.scheduled_for,
        now=now,
        args=run.args,
        attempt=attempt,
        first_attempt_id=run.first_attempt_id or run.pk,
        run_after=now + retry_delay(schedule.retry_delay, attempt),
    )
    if retry is None:
        return None
    run.claim_notification()
    logger.info(
        "Run %s of %s %s; attempt %d of %d at %s",
        run.pk,
        schedule,
        run.status,
        attempt,
        schedule.retries + 1,
        retry.run_after,
    )
    return retry


def final_attempt(run: Run) -> Run:
    """The latest attempt of the run ``run`` is the first attempt of (``run`` itself if none)."""
    first_id = run.first_attempt_id or run.pk
    latest = Run.objects.filter(first_attempt_id=first_id).order_by("-attempt").first()
    return latest or run
