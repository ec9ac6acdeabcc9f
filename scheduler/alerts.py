"""Alerts the scheduler raises itself: late fire times, long runs, no recent success.

A schedule may set ``late_after`` (a fire time not started that many seconds after it was
due), ``long_after`` (a run still going that long after it started; a warning, the run is
not stopped) and ``expect_success_within`` (no run succeeded for that long). Upkeep calls
:func:`check` every few seconds: it reads a few aggregates (:func:`gather`), the pure
:func:`decide` compares them with the open alerts, and :func:`apply` raises or clears.

An alert goes out once however many daemons check: at most one alert of a kind is open
per schedule (a unique constraint refuses a second), and clearing is an update
conditional on the alert being open. The daemon whose write succeeded mails ``ADMINS``,
sends ``alert_raised``/``alert_cleared``, and on raising pings the schedule's
``ping_url`` failure path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from .models import Alert, AlertKind, Run, Schedule, Status
from .pings import ping
from .signals import alert_cleared, alert_raised

logger = logging.getLogger("scheduler.alerts")

# Seconds between two checks by one daemon: the queries are a few cheap aggregates.
CHECK_INTERVAL = 2.0


@dataclass(frozen=True)
class Facts:
    """What one enabled schedule's alerts are judged on, read at one time."""

    schedule_id: int
    late_after: int | None = None
    long_after: int | None = None
    expect_success_within: int | None = None
    # The oldest fire time due and not started: the next one after the latest claimed
    # (or after the schedule's creation), or the oldest still queued for a worker.
    due: datetime | None = None
    # The longest-running run of the schedule: its id and start.
    running: tuple[int, datetime] | None = None
    # When a run last succeeded (finished); else when the schedule was created.
    success_since: datetime | None = None


@dataclass(frozen=True)
class OpenAlert:
    pk: int
    schedule_id: int
    kind: str


@dataclass(frozen=True)
class Raise:
    schedule_id: int
    kind: str
    message: str
    run_id: int | None = None


@dataclass(frozen=True)
class Clear:
    alert_id: int
    note: str


Decision = Raise | Clear


def _condition(facts: Facts, kind: str, now: datetime) -> tuple[bool, str, int | None] | None:
    """Return (holds, message, run id) for ``kind``, or None if the schedule has no such alert."""
    if kind == AlertKind.LATE:
        if facts.late_after is None:
            return None
        late = facts.due is not None and now - facts.due >= timedelta(seconds=facts.late_after)
        message = (
            f"The fire time due at {facts.due:%Y-%m-%d %H:%M:%S %Z} has not started "
            f"{facts.late_after} s after it was due."
            if facts.due is not None
            else ""
        )
        return late, message, None
    if kind == AlertKind.LONG:
        if facts.long_after is None:
            return None
        if facts.running is None:
            return False, "", None
        run_id, started_at = facts.running
        long = now - started_at >= timedelta(seconds=facts.long_after)
        message = (
            f"Run #{run_id}, started at {started_at:%Y-%m-%d %H:%M:%S %Z}, is still going "
            f"after {facts.long_after} s (it is not stopped)."
        )
        return long, message, run_id
    if facts.expect_success_within is None:
        return None
    since = facts.success_since
    missing = since is not None and now - since >= timedelta(seconds=facts.expect_success_within)
    message = (
        f"No run has succeeded in {facts.expect_success_within} s (since "
        f"{since:%Y-%m-%d %H:%M:%S %Z})."
        if since is not None
        else ""
    )
    return missing, message, None


CLEAR_NOTES = {
    AlertKind.LATE: "No fire time is overdue any more: it started, was skipped or a later "
    "one was taken.",
    AlertKind.LONG: "No run of the schedule has been going that long any more.",
    AlertKind.NO_SUCCESS: "A run succeeded.",
}


def decide(
    facts: Iterable[Facts], open_alerts: Iterable[OpenAlert], now: datetime
) -> list[Decision]:
    """Return the alerts to raise and to clear, given the facts and the open alerts.

    An open alert clears when its condition ends, when its schedule no longer sets the
    alert, or when the schedule is disabled or gone (it has no facts then).
    """
    by_schedule = {fact.schedule_id: fact for fact in facts}
    open_by_key = {(alert.schedule_id, alert.kind): alert for alert in open_alerts}
    decisions: list[Decision] = []
    for fact in by_schedule.values():
        for kind in AlertKind.values:
            condition = _condition(fact, kind, now)
            alert = open_by_key.pop((fact.schedule_id, kind), None)
            if condition is None:
                if alert is not None:
                    decisions.append(Clear(alert.pk, "The schedule no longer sets this alert."))
                continue
            holds, message, run_id = condition
            if holds and alert is None:
                decisions.append(Raise(fact.schedule_id, kind, message, run_id))
            elif not holds and alert is not None:
                decisions.append(Clear(alert.pk, CLEAR_NOTES[AlertKind(kind)]))
    for alert in open_by_key.values():
        decisions.append(Clear(alert.pk, "The schedule is disabled, or sets no alerts any more."))
    return decisions


def gather(now: datetime) -> list[Facts]:
    """Read the facts of every enabled schedule that sets an alert (a few aggregates).

    A paused schedule is left out, and after a pause its clocks start at the pause's end:
    a pause is on purpose, not a late or failing job.
    """
    schedules = list(
        Schedule.objects.filter(enabled=True)
        .exclude(paused_until__gt=now)
        .filter(
            Q(late_after__isnull=False)
            | Q(long_after__isnull=False)
            | Q(expect_success_within__isnull=False)
        )
    )
    if not schedules:
        return []
    ids = [schedule.pk for schedule in schedules]
    late_ids = [s.pk for s in schedules if s.late_after is not None]
    stamps = Run.objects.latest_fire_times(late_ids) if late_ids else {}
    queued = dict(
        Run.objects.queued()
        .fire_times()
        .filter(schedule_id__in=late_ids)
        .values("schedule_id")
        .annotate(oldest=Min("scheduled_for"))
        .values_list("schedule_id", "oldest")
    )
    running: dict[int, tuple[int, datetime]] = {}
    for schedule_id, run_id, started_at in (
        Run.objects.running()
        .filter(schedule_id__in=[s.pk for s in schedules if s.long_after is not None])
        .exclude(started_at__isnull=True)
        .order_by("-started_at")
        .values_list("schedule_id", "pk", "started_at")
    ):
        if started_at is not None:
            running[schedule_id] = (run_id, started_at)  # the oldest start comes last
    successes = dict(
        Run.objects.filter(schedule_id__in=ids, status=Status.SUCCEEDED)
        .values("schedule_id")
        .annotate(last=Max("finished_at"))
        .values_list("schedule_id", "last")
    )
    facts = []
    for schedule in schedules:
        due = None
        if schedule.late_after is not None:
            since = max(
                filter(None, [stamps.get(schedule.pk), schedule.created_at, schedule.paused_until])
            )
            due = schedule.timing.next_fire_time(since)
            if due is not None and due > now:
                due = None
            oldest_queued = queued.get(schedule.pk)
            if oldest_queued is not None and (due is None or oldest_queued < due):
                due = oldest_queued
        last_success = successes.get(schedule.pk)
        facts.append(
            Facts(
                schedule_id=schedule.pk,
                late_after=schedule.late_after,
                long_after=schedule.long_after,
                expect_success_within=schedule.expect_success_within,
                due=due,
                running=running.get(schedule.pk),
                success_since=max(
                    filter(None, [last_success, schedule.created_at, schedule.paused_until])
                ),
            )
        )
    return facts


def open_alerts() -> list[OpenAlert]:
    """Return the alerts not cleared yet."""
    return [
        OpenAlert(pk, schedule_id, kind)
        for pk, schedule_id, kind in Alert.objects.filter(cleared_at__isnull=True).values_list(
            "pk", "schedule_id", "kind"
        )
    ]


def apply(decisions: Sequence[Decision], now: datetime) -> list[Alert]:
    """Raise and clear as decided; notify about those this process won; return them."""
    done = []
    for decision in decisions:
        if isinstance(decision, Raise):
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        schedule_id=decision.schedule_id,
                        kind=decision.kind,
                        message=decision.message,
                        run_id=decision.run_id,
                        raised_at=now,
                    )
            except IntegrityError:
                continue  # another daemon raised it first
            alert = Alert.objects.select_related("schedule").get(pk=alert.pk)
            logger.warning("Alert raised for %s: %s", alert.schedule, alert.message)
            notify_raised(alert)
        else:
            if not Alert.objects.filter(pk=decision.alert_id, cleared_at__isnull=True).update(
                cleared_at=now, note=decision.note
            ):
                continue
            alert = Alert.objects.select_related("schedule").get(pk=decision.alert_id)
            logger.info("Alert cleared for %s: %s", alert.schedule, alert.note)
            notify_cleared(alert)
        done.append(alert)
    return done


def check(now: datetime | None = None) -> list[Alert]:
    """Raise the alerts whose condition holds now and clear those whose condition ended."""
    now = now or timezone.now()
    return apply(decide(gather(now), open_alerts(), now), now)


def notify_raised(alert: Alert) -> None:
    """Mail ``ADMINS``, send ``alert_raised`` and ping the schedule's failure path."""
    _mail(alert, f"{alert.schedule.name}: alert: {alert.get_kind_display()}", alert.message)
    alert_raised.send(sender=Alert, alert=alert)
    ping(alert.schedule.ping_url, "fail")


def notify_cleared(alert: Alert) -> None:
    """Mail ``ADMINS`` and send ``alert_cleared``."""
    body = f"{alert.note}\n\nThe alert was: {alert.message}"
    _mail(alert, f"{alert.schedule.name}: cleared: {alert.get_kind_display()}", body)
    alert_cleared.send(sender=Alert, alert=alert)


def _mail(alert: Alert, subject: str, body: str) -> None:
    if not settings.ADMINS:
        return
    try:
        mail_admins(subject, body, fail_silently=False)
    except Exception:
        logger.exception("Could not mail admins about alert %s", alert.pk)
