from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from scheduler.health import check_health
from scheduler.liveness import dead_heartbeats, live_daemons, prune_heartbeats
from scheduler.models import Heartbeat, Reason, Run, Schedule, Status
from scheduler.owners import Owner

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STALE = timedelta(seconds=30)
pytestmark = pytest.mark.django_db


@pytest.fixture
def me():
    return Heartbeat.objects.create(host="here", pid=100, last_beat=Now())


@pytest.fixture
def running_run_of(make_schedule):
    """Give a heartbeat (daemon) a running run."""

    def make(heartbeat: Heartbeat) -> Run:
        schedule = make_schedule()
        owner = Owner(heartbeat.host, heartbeat.pid, heartbeat.pk)
        return Run.claim(schedule.pk, NOW, Reason.SCHEDULED, owner=owner)

    return make


def dead(me, alive_pids=()) -> list[int]:
    return dead_heartbeats(stale_after=STALE, me=me, is_alive=lambda pid: pid in alive_pids)


def test_a_daemon_on_another_host_with_a_stale_heartbeat_is_dead(me, running_run_of):
    other = Heartbeat.objects.create(
        host="elsewhere", pid=7, last_beat=Now() - timedelta(minutes=5)
    )
    running_run_of(other)
    assert dead(me) == [other.pk]


def test_a_daemon_on_another_host_with_a_fresh_heartbeat_is_alive(me, running_run_of):
    other = Heartbeat.objects.create(
        host="elsewhere", pid=7, last_beat=Now() - timedelta(seconds=5)
    )
    running_run_of(other)
    assert dead(me) == []


def test_a_local_daemon_whose_process_is_gone_is_dead_at_once(me, running_run_of):
    killed = Heartbeat.objects.create(host="here", pid=55, last_beat=Now())
    alive = Heartbeat.objects.create(host="here", pid=56, last_beat=Now())
    running_run_of(killed)
    running_run_of(alive)
    assert dead(me, alive_pids={56}) == [killed.pk]


def test_an_earlier_life_with_my_own_pid_is_dead(me, running_run_of):
    earlier = Heartbeat.objects.create(host="here", pid=100, last_beat=Now())
    running_run_of(earlier)
    assert dead(me, alive_pids={100}) == [earlier.pk]


def test_my_own_runs_are_never_orphans(me, running_run_of):
    running_run_of(me)
    assert dead(me) == []


def test_orphans_end_interrupted_and_other_runs_are_untouched(me, running_run_of):
    other = Heartbeat.objects.create(
        host="elsewhere", pid=7, last_beat=Now() - timedelta(minutes=5)
    )
    orphan = running_run_of(other)
    mine = running_run_of(me)
    assert Run.objects.running().owned_by(dead(me)).interrupt("gone") == [orphan]
    orphan.refresh_from_db()
    mine.refresh_from_db()
    assert orphan.status == Status.INTERRUPTED
    assert orphan.finished_at is not None
    assert "gone" in orphan.stderr
    assert mine.status == Status.RUNNING


def test_long_gone_daemons_without_running_runs_are_forgotten(me, running_run_of):
    old = Heartbeat.objects.create(host="x", pid=1, last_beat=Now() - timedelta(days=8))
    old_busy = Heartbeat.objects.create(host="x", pid=2, last_beat=Now() - timedelta(days=8))
    running_run_of(old_busy)
    prune_heartbeats(keep_for=timedelta(days=7))
    assert set(Heartbeat.objects.values_list("pk", flat=True)) == {me.pk, old_busy.pk}
    assert not Heartbeat.objects.filter(pk=old.pk).exists()


def test_the_heartbeat_of_a_finished_terminal_or_worker_run_is_dropped_at_once(me):
    def stopped(kind: str) -> Heartbeat:
        return Heartbeat.objects.create(host="x", pid=3, kind=kind, last_beat=Now(), stopped_at=NOW)

    daemon = stopped("daemon")
    stopped("cli"), stopped("worker")
    assert prune_heartbeats(keep_for=timedelta(days=7)) == 2
    assert set(Heartbeat.objects.values_list("pk", flat=True)) == {me.pk, daemon.pk}


def test_admin_lists_daemons_with_their_state(admin_client, me):
    Heartbeat.objects.create(host="elsewhere", pid=7, last_beat=Now() - timedelta(days=1))
    Heartbeat.start(host="elsewhere", pid=8)
    page = admin_client.get("/admin/scheduler/heartbeat/").content.decode()
    assert "elsewhere:7" in page
    assert "not heard from" in page
    assert "alive, not firing (starting up or shutting down)" in page


def test_just_after_an_outage_stale_heartbeats_are_not_judged(me, running_run_of):
    other = Heartbeat.objects.create(
        host="elsewhere", pid=7, last_beat=Now() - timedelta(minutes=5)
    )
    running_run_of(other)
    held_back = dead_heartbeats(stale_after=STALE, me=me, judge_stale=False)
    assert held_back == []


def test_same_host_name_in_another_pid_namespace_is_judged_by_heartbeat(me, running_run_of):
    twin = Heartbeat.objects.create(host="here", pid=55, last_beat=Now(), pid_namespace="pid:[1]")
    running_run_of(twin)
    assert dead(me, alive_pids=set()) == []


def test_the_daemons_dividing_the_schedules_are_those_that_beat_and_fire(me):
    def daemon(host="elsewhere", pid=7, **fields) -> int:
        fields = {"host": host, "pid": pid, "last_beat": Now(), "firing_since": NOW, **fields}
        return Heartbeat.objects.create(**fields).pk

    beating = [daemon(), daemon(host="here", pid=101)]
    daemon(last_beat=Now() - timedelta(minutes=1))  # silent
    daemon(stopped_at=timezone.now())
    daemon(firing_since=None)  # starting up, or shutting down and finishing its runs
    daemon(kind="cli")
    daemon(host="here", pid=102)  # its process is gone
    daemon(host="here", pid=100)  # an earlier life with my pid

    live = live_daemons(stale_after=STALE, me=me, is_alive=lambda pid: pid == 101)

    assert live == sorted([me.pk, *beating])


@pytest.fixture
def tasks_run_started(make_schedule):
    """A ``tasks`` run a worker started ``ago`` before NOW."""

    def make(ago: timedelta, timeout: int | None = None, jitter: int | None = None) -> Run:
        schedule = make_schedule(executor="tasks", timeout=timeout, jitter=jitter)
        run = Run.claim(schedule.pk, NOW - ago, Reason.SCHEDULED, owner=Owner("x", 1))
        run.start(owner=Owner("worker-host", 42))
        Run.objects.filter(pk=run.pk).update(started_at=NOW - ago)
        return run

    return make


def overdue(max_age=timedelta(hours=24)) -> list[Run]:
    grace = timedelta(seconds=35)
    return Run.objects.overdue_tasks(NOW, max_age=max_age, grace=grace).interrupt("lost")


def test_a_tasks_run_long_past_its_timeout_ends_interrupted(tasks_run_started):
    late = tasks_run_started(timedelta(seconds=60 + 36), timeout=60)
    tasks_run_started(timedelta(seconds=60 + 30), timeout=60)  # its worker may be stopping it
    assert overdue() == [late]
    late.refresh_from_db()
    assert late.status == Status.INTERRUPTED
    assert "lost" in late.stderr


def test_a_tasks_run_may_wait_out_its_jitter_on_top_of_its_timeout(tasks_run_started):
    tasks_run_started(timedelta(seconds=60 + 36), timeout=60, jitter=120)
    assert overdue() == []


def test_a_tasks_run_without_timeout_ends_interrupted_past_the_maximum_age(tasks_run_started):
    old = tasks_run_started(timedelta(hours=3))
    tasks_run_started(timedelta(hours=1))
    assert overdue(max_age=timedelta(hours=2)) == [old]


def test_queued_runs_and_local_runs_are_never_overdue(make_schedule, me, running_run_of):
    queued = make_schedule(executor="tasks")
    Run.claim(queued.pk, NOW - timedelta(days=3), Reason.SCHEDULED, owner=Owner("x", 1))
    local = running_run_of(me)
    Run.objects.filter(pk=local.pk).update(started_at=NOW - timedelta(days=3))
    assert overdue() == []


def test_a_timeout_lowered_after_the_start_does_not_make_a_tasks_run_overdue(tasks_run_started):
    going = tasks_run_started(timedelta(seconds=60 + 36), timeout=600)
    Schedule.objects.filter(pk=going.schedule_id).update(timeout=60, jitter=None)
    assert overdue() == []
    going.refresh_from_db()
    assert going.status == Status.RUNNING


@pytest.mark.parametrize("skew", [timedelta(hours=2), -timedelta(hours=2)])
def test_a_live_daemon_is_judged_by_the_database_clock_not_the_judges(
    time_machine, me, running_run_of, skew
):
    other = Heartbeat.start(host="elsewhere", pid=7)
    running_run_of(other)
    time_machine.move_to(timezone.now() + skew, tick=True)  # this host's clock is off
    other.beat()
    me.beat()
    assert dead(me) == []
    assert Heartbeat.objects.with_age().get(pk=other.pk).is_fresh(STALE)
    assert check_health(timezone.now()).status == "ok"


def test_a_heartbeat_beaten_by_a_skewed_host_stays_fresh(time_machine, me, running_run_of):
    time_machine.move_to(timezone.now() - timedelta(hours=2), tick=True)
    other = Heartbeat.start(host="elsewhere", pid=7)  # its host's clock is behind
    other.beat()
    running_run_of(other)
    time_machine.move_to(timezone.now() + timedelta(hours=2), tick=True)
    assert dead(me) == []
