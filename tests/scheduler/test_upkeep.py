"""Upkeep keeps daemons' up-time as long as runs, so `schedules why` can answer that far."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from scheduler.in_flight import InFlightPool
from scheduler.models import Heartbeat
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
