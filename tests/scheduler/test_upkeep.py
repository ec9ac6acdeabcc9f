"""Upkeep keeps daemons' up-time as long as runs, so `schedules why` can answer that far."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from scheduler.in_flight import InFlightPool
from scheduler.models import Heartbeat, Reason, Run, Status
from scheduler.owners import Owner
from scheduler.upkeep import Upkeep

pytestmark = pytest.mark.django_db


def test_stopped_daemons_are_kept_for_keep_days_and_forgotten_after(settings):
    settings.SCHEDULER = {"KEEP_DAYS": 30}
    now = timezone.now()

    def stopped(days_ago: int) -> Heartbeat:
        # Heartbeats are judged by the database's clock, so their ages are set by it too.
        then = Now() - timedelta(days=days_ago)
        return Heartbeat.objects.create(
            host="h", pid=days_ago, started_at=then, last_beat=then, stopped_at=then
        )

    kept, gone = stopped(10), stopped(31)
    upkeep = Upkeep(InFlightPool(1, inline=True))
    upkeep.heartbeat = Heartbeat.start(host="me", pid=1)
    upkeep.check_liveness(now)
    remaining = set(Heartbeat.objects.values_list("pk", flat=True))
    assert kept.pk in remaining and gone.pk not in remaining


@pytest.fixture
def upkeep() -> Upkeep:
    upkeep = Upkeep(InFlightPool(1, inline=True))
    upkeep.heartbeat = Heartbeat.start(host="me", pid=1)
    upkeep.check_liveness(timezone.now())  # the first look at start-up resolves everything
    return upkeep


def test_an_idle_daemon_only_beats_between_looks(upkeep, django_assert_num_queries):
    with django_assert_num_queries(1):
        upkeep.check_liveness(timezone.now())


def test_an_idle_daemon_looks_for_unsettled_runs_once_a_heartbeat_timeout(
    upkeep, settings, django_assert_num_queries
):
    settings.SCHEDULER = {"HEARTBEAT_TIMEOUT": 0}
    with django_assert_num_queries(2):  # the beat, and "anything running or queued?"
        upkeep.check_liveness(timezone.now())


def test_a_run_started_after_an_idle_look_is_resolved_at_the_next_look(
    upkeep, make_schedule, settings
):
    settings.SCHEDULER = {"HEARTBEAT_TIMEOUT": 0}
    gone = Heartbeat.objects.create(host="elsewhere", pid=7, last_beat=Now() - timedelta(hours=1))
    schedule = make_schedule(interval=60)
    run = Run.claim(
        schedule.pk, timezone.now(), Reason.SCHEDULED, owner=Owner("elsewhere", 7, gone.pk)
    )
    upkeep.check_liveness(timezone.now())  # finds the run going
    run.refresh_from_db()
    assert run.status == Status.INTERRUPTED
