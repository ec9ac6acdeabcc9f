from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from scheduler.models import Alert, AlertKind, Reason, Run, Schedule, Status
from scheduler.retention import prune_runs

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


@pytest.fixture
def history():
    """Give a schedule runs ``ages`` (in days) before NOW, all finished unless told."""

    def make(schedule, ages, status=Status.SUCCEEDED) -> list[Run]:
        return [
            Run.objects.create(
                schedule=schedule,
                command=schedule.command if schedule else "say",
                reason=Reason.SCHEDULED,
                status=status,
                scheduled_for=NOW - timedelta(days=age),
            )
            for age in ages
        ]

    return make


def ages_left(schedule) -> list[float]:
    return sorted(
        (NOW - when).days
        for when in Run.objects.filter(schedule=schedule).values_list("scheduled_for", flat=True)
    )


@override_settings(SCHEDULER={"KEEP_RUNS": 3, "KEEP_DAYS": 90})
def test_only_the_newest_runs_are_kept(make_schedule, history):
    schedule = make_schedule()
    history(schedule, [1, 2, 3, 4, 5])
    assert prune_runs(NOW) == 2
    assert ages_left(schedule) == [1, 2, 3]


@override_settings(SCHEDULER={"KEEP_RUNS": 100, "KEEP_DAYS": 10})
def test_runs_older_than_the_age_limit_go(make_schedule, history):
    schedule = make_schedule()
    history(schedule, [1, 9, 11, 400])
    prune_runs(NOW)
    assert ages_left(schedule) == [1, 9]


@override_settings(SCHEDULER={"KEEP_RUNS": 100, "KEEP_DAYS": 100})
def test_a_schedules_own_limits_override_the_settings(make_schedule, history):
    strict = make_schedule(keep_runs=1)
    short = make_schedule(keep_days=2)
    default = make_schedule()
    for schedule in (strict, short, default):
        history(schedule, [1, 3, 5])
    prune_runs(NOW)
    assert ages_left(strict) == [1]
    assert ages_left(short) == [1]
    assert ages_left(default) == [1, 3, 5]


@override_settings(SCHEDULER={"KEEP_RUNS": 100, "KEEP_DAYS": 100})
def test_a_keep_days_beyond_the_calendar_keeps_runs_and_others_are_still_pruned(
    make_schedule, history
):
    forever = make_schedule()
    short = make_schedule(keep_days=2)
    # Written around validation: 999999 days before now is before year 1.
    Schedule.objects.filter(pk=forever.pk).update(keep_days=999_999)
    for schedule in (forever, short):
        history(schedule, [1, 3, 5000])
    prune_runs(NOW)
    assert ages_left(forever) == [1, 3, 5000]
    assert ages_left(short) == [1]


@override_settings(SCHEDULER={"KEEP_RUNS": 100, "KEEP_DAYS": 999_999})
def test_a_default_keep_days_beyond_the_calendar_keeps_runs(make_schedule, history):
    schedule = make_schedule()
    history(schedule, [1, 5000])
    assert prune_runs(NOW) == 0


@override_settings(SCHEDULER={"KEEP_RUNS": 1, "KEEP_DAYS": 1})
def test_running_and_queued_runs_are_never_pruned(make_schedule, history):
    schedule = make_schedule()
    history(schedule, [5], status=Status.RUNNING)
    history(schedule, [6], status=Status.QUEUED)
    history(schedule, [7])
    prune_runs(NOW)
    assert set(Run.objects.values_list("status", flat=True)) == {Status.RUNNING, Status.QUEUED}


@override_settings(SCHEDULER={"KEEP_DAYS": 30})
def test_runs_of_deleted_schedules_follow_the_age_limit(history):
    history(None, [1, 40])
    prune_runs(NOW)
    assert Run.objects.count() == 1


@override_settings(SCHEDULER={"KEEP_RUNS": 0, "KEEP_DAYS": 1000})
def test_pruning_goes_in_bounded_batches(make_schedule, history):
    schedule = make_schedule()
    history(schedule, range(1, 26))
    assert prune_runs(NOW, batch=4, max_batches=3) == 12
    assert prune_runs(NOW, batch=4, max_batches=3) == 12
    assert prune_runs(NOW, batch=4, max_batches=3) == 0
    assert ages_left(schedule) == [1]  # the latest claimed fire time


@override_settings(SCHEDULER={"KEEP_RUNS": 0, "KEEP_DAYS": 1})
def test_the_latest_claimed_fire_time_is_always_kept(make_schedule, history):
    schedule = make_schedule()
    history(schedule, [400, 500])
    Run.claim_manual(schedule)
    Run.objects.filter(reason=Reason.MANUAL).update(
        status=Status.SUCCEEDED, scheduled_for=NOW - timedelta(days=30)
    )
    prune_runs(NOW)
    assert ages_left(schedule) == [400]


@override_settings(SCHEDULER={"KEEP_RUNS": 0, "KEEP_DAYS": 1000})
def test_a_pruning_batch_writes_without_loading_the_runs_it_deletes(make_schedule, history):
    schedule = make_schedule()
    runs = history(schedule, range(1, 8))
    Alert.objects.create(schedule=schedule, kind=AlertKind.LONG, message="x", run=runs[-1])
    with CaptureQueriesContext(connection) as queries:
        assert prune_runs(NOW, batch=3, pause=0) == 6
    statements = [query["sql"] for query in queries]
    assert not [sql for sql in statements if '"stdout"' in sql]  # no run is loaded
    assert len([sql for sql in statements if sql.startswith("DELETE")]) == 2
    assert Alert.objects.get().run is None


@override_settings(SCHEDULER={"KEEP_RUNS": 0, "KEEP_DAYS": 1000})
def test_pruning_pauses_between_batches_so_claims_get_the_write_lock(make_schedule, history):
    history(make_schedule(), range(1, 8))
    deletes: list[float] = []

    def clock(execute, sql, params, many, context):
        if sql.startswith("DELETE"):
            deletes.append(time.monotonic())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(clock):
        prune_runs(NOW, batch=2, pause=0.05)
    gaps = [later - earlier for earlier, later in itertools.pairwise(deletes)]
    assert len(gaps) == 2
    assert min(gaps) >= 0.05
