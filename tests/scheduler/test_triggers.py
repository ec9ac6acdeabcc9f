"""Jobs stored by earlier versions name their trigger ``scheduler.triggers.TimingTrigger``."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django_apscheduler.models import DjangoJob

from scheduler.apscheduler_adapter import TimingTrigger
from scheduler.daemon import SchedulerDaemon
from scheduler.timing import Timing

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
# The job of schedule 4242 (every 60 s from T0) exactly as the daemon stored it before
# the trigger moved to scheduler.apscheduler_adapter.
EARLIER_JOB_STATE = base64.b64decode(
    "gAWV0QEAAAAAAAB9lCiMB3ZlcnNpb26USwGMAmlklIwNc2NoZWR1bGUtNDI0MpSMBGZ1bmOUjB1zY2hlZHVs"
    "ZXIucnVubmVyOnJ1bl9zY2hlZHVsZZSMB3RyaWdnZXKUjBJzY2hlZHVsZXIudHJpZ2dlcnOUjA1UaW1pbmdU"
    "cmlnZ2VylJOUKYGUfZQoaAFLAYwGdGltaW5nlIwQc2NoZWR1bGVyLnRpbWluZ5SMBlRpbWluZ5STlCmBlH2U"
    "KIwEY3JvbpROjAhpbnRlcnZhbJRLPIwIdGltZXpvbmWUjANVVEOUjAZhbmNob3KUjAhkYXRldGltZZSMCGRh"
    "dGV0aW1llJOUQwoH6gsYAQAAAAAAlGgXjAh0aW1lem9uZZSTlGgXjAl0aW1lZGVsdGGUk5RLAEsASwCHlFKU"
    "hZRSlIaUUpR1YnVijAhleGVjdXRvcpSMB2RlZmF1bHSUjARhcmdzlF2UTZIQYYwGa3dhcmdzlH2UjARuYW1l"
    "lIwDb2xklIwSbWlzZmlyZV9ncmFjZV90aW1llE6MCGNvYWxlc2NllImMDW1heF9pbnN0YW5jZXOUSwGMDW5l"
    "eHRfcnVuX3RpbWWUaBlDCgfqCxgBAQAAAACUaCKGlFKUdS4="
)
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def daemon(time_machine) -> Iterator[SchedulerDaemon]:
    """A daemon at T0 whose APScheduler is started but paused: jobs are read, none fire."""
    time_machine.move_to(T0, tick=False)
    daemon = SchedulerDaemon(poll_interval=0.1)
    daemon.jobs.start(paused=True)
    yield daemon
    daemon.jobs.shutdown()
    daemon.pool.shutdown(wait=True)


def store_earlier_job(row_id: str = "schedule-4242") -> None:
    DjangoJob.objects.create(
        id=row_id, next_run_time=T0 + timedelta(seconds=60), job_state=EARLIER_JOB_STATE
    )


def test_a_job_stored_by_an_earlier_version_is_read_and_planned_again(daemon, make_schedule):
    make_schedule(id=4242, interval=60, executor="thread", created_at=T0)
    store_earlier_job()
    # Read, not deleted as unreadable (django-apscheduler deletes a job it cannot load).
    assert daemon.jobs.next_fire_times() == {4242: T0 + timedelta(seconds=60)}

    daemon.plan_all()
    daemon.planner.drop_orphan_jobs()

    assert daemon.jobs.next_fire_times() == {4242: T0 + timedelta(seconds=60)}
    assert b"scheduler.triggers" in DjangoJob.objects.get().job_state


def test_jobs_written_now_name_the_trigger_where_earlier_versions_look_for_it():
    state = pickle.dumps(TimingTrigger(Timing(interval=60, anchor=T0)))
    assert b"scheduler.triggers" in state
    assert b"apscheduler_adapter" not in state


def test_an_earlier_job_of_a_schedule_deleted_meanwhile_is_removed_at_start_up(daemon):
    store_earlier_job()
    daemon.plan_all()
    daemon.planner.drop_orphan_jobs()
    assert not DjangoJob.objects.exists()
