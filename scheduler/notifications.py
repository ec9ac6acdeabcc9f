"""Mail ADMINS about runs, the way systemd's ``OnFailure=`` hooks are used with cron jobs."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import mail_admins
from django.urls import NoReverseMatch, reverse

from .models import PROBLEM_STATUSES, Notify, Run, Status

logger = logging.getLogger("scheduler.notifications")

# Enough of the output to see what went wrong without opening admin.
EXCERPT = 4000


def wants_mail(run: Run) -> bool:
    policy = run.schedule.notify if run.schedule else Notify.FAILURES
    if policy == Notify.NEVER or run.status == Status.SKIPPED:
        return False
    return policy == Notify.ALWAYS or run.status in PROBLEM_STATUSES


def mail_admins_about_run(sender: object, run: Run, **kwargs: Any) -> None:
    """``run_finished`` receiver: one mail per run at most, however many processes see it."""
    if not settings.ADMINS or not wants_mail(run) or not run.claim_notification():
        return
    name = run.schedule.name if run.schedule else run.command
    subject = f"{name}: {run.get_status_display().lower()} (exit code {run.exit_code})"
    try:
        link = reverse("admin:scheduler_run_change", args=[run.pk])
    except NoReverseMatch:
        link = f"run #{run.pk}"
    body = "\n".join(
        [
            f"Command: {' '.join([run.command, *run.args])}",
            f"Status: {run.get_status_display()}, exit code {run.exit_code}",
            f"Reason: {run.get_reason_display()}, for {run.scheduled_for:%Y-%m-%d %H:%M:%S %Z}",
            f"Host: {run.host} (pid {run.pid})",
            f"Admin: {link}",
            "",
            "--- stderr (end) ---",
            run.stderr[-EXCERPT:],
            "--- stdout (end) ---",
            run.stdout[-EXCERPT:],
        ]
    )
    try:
        mail_admins(subject, body, fail_silently=False)
    except Exception:
        logger.exception("Could not mail admins about run %s", run.pk)
