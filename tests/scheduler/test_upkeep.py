"""Upkeep keeps daemons' up-time as long as runs, so `schedules why` can answer that far."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from scheduler.in_flight import InFlightPool
from scheduler.models import Heartbeat, Reason, Run, Status
from scheduler.owners import Owner
from scheduler.shares import EVERYTHING, Share, share_of
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
    # The beat, which daemons live (alone, it reads that as seldom), and "anything running
    # or queued?"
    with django_assert_num_queries(3):
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


@pytest.fixture
def divided() -> list[frozenset[Share]]:
    """The shares held that each call of ``on_divide`` handed on."""
    return []


def sharing_upkeep(divided: list[frozenset[Share]], *, overlap: float | None = None) -> Upkeep:
    upkeep = Upkeep(
        InFlightPool(1, inline=True), on_divide=lambda held, current, before: divided.append(held)
    )
    upkeep.heartbeat = Heartbeat.start(host="me", pid=1)
    if overlap is not None:
        upkeep.shares.overlap = overlap
    return upkeep


def other_daemon() -> Heartbeat:
    other = Heartbeat.start(host="elsewhere", pid=2)
    other.start_firing()
    return other


def test_daemons_that_beat_divide_the_schedules_by_heartbeat_order(divided):
    other = other_daemon()
    upkeep = sharing_upkeep(divided, overlap=0)  # the new share at once
    upkeep.check_liveness(timezone.now())
    assert divided == [{share_of(upkeep.heartbeat.pk, [other.pk])}] == [{Share(1, 2)}]


def test_a_daemon_learning_it_shares_fires_everything_for_the_overlap(divided):
    other_daemon()
    upkeep = sharing_upkeep(divided)
    upkeep.check_liveness(timezone.now())
    assert upkeep.shares.current == Share(1, 2)
    assert divided == [{EVERYTHING}]  # still every schedule while the other may not know


def test_a_change_of_the_own_share_is_handed_on_while_the_shares_held_stay():
    calls = []
    upkeep = Upkeep(InFlightPool(1, inline=True), on_divide=lambda *call: calls.append(call))
    upkeep.heartbeat = Heartbeat.start(host="me", pid=1)
    other = other_daemon()
    upkeep.check_liveness(timezone.now())
    other.stop_firing()  # within the overlap: this daemon still fires every schedule
    upkeep.divide(read=True)
    everything = frozenset({EVERYTHING})
    assert calls == [
        (everything, Share(0, 2), EVERYTHING),
        (everything, EVERYTHING, Share(0, 2)),  # it gains the other's schedules: replanned
    ]


def test_a_daemon_whose_first_write_of_firing_failed_writes_it_at_the_next_beat(upkeep):
    upkeep.firing = True  # as if start_firing's write had failed in an outage
    upkeep.check_liveness(timezone.now())
    upkeep.heartbeat.refresh_from_db()
    assert upkeep.heartbeat.firing_since is not None


def test_a_daemon_counts_only_once_it_fires(divided):
    other = Heartbeat.start(host="elsewhere", pid=2)  # still planning its schedules
    upkeep = sharing_upkeep(divided, overlap=0)
    upkeep.check_liveness(timezone.now())
    assert upkeep.shares.current == EVERYTHING
    other.start_firing()
    upkeep.divide(read=True)
    assert divided == [{Share(1, 2)}]


def test_the_overlap_outlasts_a_live_daemon_going_without_reading(settings, divided):
    settings.SCHEDULER = {"HEARTBEAT_INTERVAL": 7, "HEARTBEAT_TIMEOUT": 40}
    assert sharing_upkeep(divided).shares.overlap == 47


def test_a_daemon_stopping_to_fire_leaves_its_share_to_the_others(divided):
    other = other_daemon()
    upkeep = sharing_upkeep(divided, overlap=0)
    upkeep.check_liveness(timezone.now())
    other.stop_firing()  # it shuts down
    upkeep.divide(read=True)
    assert divided == [{Share(1, 2)}, {EVERYTHING}]


def test_a_sharing_daemon_not_told_reads_the_daemons_at_a_change_once_a_poll_interval(
    divided, settings, django_assert_num_queries
):
    other_daemon()
    upkeep = sharing_upkeep(divided)
    upkeep.check_liveness(timezone.now())
    with django_assert_num_queries(0):
        upkeep.notice_change()
    settings.SCHEDULER = {"POLL_INTERVAL": 0}
    with django_assert_num_queries(1):
        upkeep.notice_change()


def test_a_sharing_daemon_reads_the_live_daemons_at_every_beat(divided, django_assert_num_queries):
    other_daemon()
    upkeep = sharing_upkeep(divided)
    upkeep.check_liveness(timezone.now())
    with django_assert_num_queries(2):  # the beat, which daemons live
        upkeep.check_liveness(timezone.now())


def test_a_lone_daemon_told_of_daemons_reads_them_when_told_or_once_a_heartbeat_timeout(
    upkeep, settings, django_assert_num_queries
):
    upkeep.told_of_daemons = True
    with django_assert_num_queries(0):
        upkeep.divide()
        upkeep.notice_change()
    with django_assert_num_queries(1):
        upkeep.divide(read=True)
    # A daemon judged dead after an outage beats again unannounced.
    settings.SCHEDULER = {"HEARTBEAT_TIMEOUT": 0}
    with django_assert_num_queries(1):
        upkeep.divide()


def test_a_lone_daemon_not_told_reads_the_daemons_at_a_change_at_most_once_a_beat(
    upkeep, settings, django_assert_num_queries
):
    settings.SCHEDULER = {"POLL_INTERVAL": 0}
    with django_assert_num_queries(0):
        upkeep.notice_change()  # it read them a moment ago
    settings.SCHEDULER = {"HEARTBEAT_INTERVAL": 0}
    with django_assert_num_queries(1):
        upkeep.notice_change()
