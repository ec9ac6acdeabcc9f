"""The launcher's catch-up of each missed fire time, run in the test's own thread."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduler import catch_up
from scheduler.in_flight import InFlightPool
from scheduler.launcher import Launcher
from scheduler.models import Reason, Run, Status
from scheduler.owners import Owner
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def launcher_on(pool: InFlightPool) -> Launcher:
    return Launcher(
        pool,
        stop=threading.Event(),
        stopping=threading.Event(),
        late_fire=timedelta(seconds=5),
        on_unclaimed=lambda schedule_id: None,
    )


@pytest.fixture
def launcher():
    pool = InFlightPool(1, inline=True)
    yield launcher_on(pool)
    pool.shutdown()


@pytest.fixture
def missed_four(make_schedule):
    """A minutely schedule that missed its last four fire times, run in threads."""
    now = timezone.now()
    return make_schedule(
        interval=60,
        executor="thread",
        command="show_run",
        args=["{scheduled_for}"],
        catch_up_runs="each",
        created_at=now - timedelta(seconds=4 * 60 + 30),
    )


def catch_up_runs() -> list[Run]:
    return list(Run.objects.filter(reason=Reason.CATCH_UP).order_by("scheduled_for"))


def test_each_missed_fire_time_runs_with_its_own_arguments(launcher, missed_four):
    decision = catch_up.decide(missed_four, None, timezone.now())
    launcher.fire_catch_ups([(missed_four, decision)])

    runs = catch_up_runs()
    assert [run.status for run in runs] == [Status.SUCCEEDED] * 4
    assert [run.args for run in runs] == [[run.scheduled_for.isoformat()] for run in runs]


def test_past_the_limit_the_first_run_notes_what_was_left_out(launcher, missed_four, monkeypatch):
    monkeypatch.setattr(catch_up, "CATCH_UP_LIMIT", 2)
    decision = catch_up.decide(missed_four, None, timezone.now())
    launcher.fire_catch_ups([(missed_four, decision)])

    first, second = catch_up_runs()
    start = missed_four.created_at
    assert (first.scheduled_for, second.scheduled_for) == (
        start + timedelta(minutes=3),
        start + timedelta(minutes=4),
    )
    assert (
        f"[scheduler] 2 older missed fire time(s), {start + timedelta(minutes=1)} to "
        f"{start + timedelta(minutes=2)}, were not run: past the limit of 2 catch-up runs"
    ) in first.stderr
    assert "[scheduler]" not in second.stderr


def test_a_missed_fire_time_waits_for_the_run_going_instead_of_being_skipped(launcher, missed_four):
    going = Run.claim(
        missed_four.pk, timezone.now() - timedelta(days=1), Reason.SCHEDULED, owner=Owner("h", 1)
    )
    decision = catch_up.decide(missed_four, None, timezone.now())
    thread = threading.Thread(target=launcher.run_each, args=(missed_four.pk, decision.fire_times))
    thread.start()
    try:
        assert not wait_for_nothing(catch_up_runs, 1.5)
        Run.objects.filter(pk=going.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
        wait_for(lambda: len(catch_up_runs()) == 4, 20)
    finally:
        launcher.stopping.set()
        thread.join(20)
    assert [run.status for run in catch_up_runs()] == [Status.SUCCEEDED] * 4


def test_a_fire_time_another_daemon_took_leaves_the_rest_to_it(launcher, missed_four):
    decision = catch_up.decide(missed_four, None, timezone.now())
    taken = Run.claim(missed_four.pk, decision.fire_times[0], Reason.CATCH_UP, owner=Owner("h", 1))
    Run.objects.filter(pk=taken.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())

    launcher.run_each(missed_four.pk, decision.fire_times)

    assert [run.pk for run in catch_up_runs()] == [taken.pk]


def wait_for_nothing(probe, seconds: float) -> list:
    """Return what ``probe`` gives after watching it stay empty for ``seconds`` (or sooner)."""
    deadline = timezone.now() + timedelta(seconds=seconds)
    while timezone.now() < deadline:
        found = probe()
        if found:
            return found
        threading.Event().wait(0.1)
    return []


@pytest.fixture
def due_now(make_schedule):
    """Five thread schedules due this instant, and the wake-up that hands them over."""
    now = timezone.now()
    schedules = [make_schedule(interval=60, executor="thread") for _ in range(5)]
    return schedules, [(schedule.pk, [now], now) for schedule in schedules]


def test_fire_times_due_together_are_claimed_together_and_each_run_once(
    launcher, due_now, django_assert_max_num_queries
):
    schedules, due = due_now
    with django_assert_max_num_queries(8 + 5 * 2):  # one claim; a start and a finish each
        launcher.fire_due(due)
    runs = Run.objects.filter(reason=Reason.SCHEDULED)
    assert sorted(runs.values_list("schedule_id", flat=True)) == [s.pk for s in schedules]
    assert set(runs.values_list("status", flat=True)) == {Status.SUCCEEDED}
    launcher.fire_due(due)  # the same fire times again, as a second daemon would
    assert runs.count() == 5


def test_a_batch_follows_each_schedules_rules(launcher, due_now):
    schedules, due = due_now
    busy, paused, disabled, taken, free = schedules
    Run.claim(
        busy.pk,
        timezone.now() - timedelta(minutes=1),
        Reason.SCHEDULED,
        owner=Owner("elsewhere", 1),
    )
    paused.paused_until = timezone.now() + timedelta(hours=1)
    paused.save()
    disabled.enabled = False
    disabled.save()
    Run.claim(taken.pk, due[3][1][0], Reason.SCHEDULED, owner=Owner("elsewhere", 2))
    launcher.fire_due(due)
    mine = Run.objects.filter(host=launcher.owner.host, pid=launcher.owner.pid)
    assert dict(mine.values_list("schedule_id", "status")) == {
        busy.pk: Status.SKIPPED,
        free.pk: Status.SUCCEEDED,
    }


def test_a_batch_claimed_while_stopping_is_given_back(due_now):
    _, due = due_now
    pool = InFlightPool(1)
    pool.close()  # shutting down: nothing more starts
    fires = [(schedule_id, times[0]) for schedule_id, times, _ in due]
    launcher_on(pool).run_fires(fires, Reason.SCHEDULED)
    assert not Run.objects.exists()  # unclaimed again: caught up at the next start


def test_missed_fire_times_of_many_schedules_are_claimed_together(
    launcher, make_schedule, django_assert_max_num_queries
):
    now = timezone.now()
    created = now - timedelta(minutes=5, seconds=30)
    schedules = [
        make_schedule(interval=60, executor="thread", created_at=created) for _ in range(5)
    ]
    decisions = [(s, catch_up.decide(s, None, now)) for s in schedules]
    with django_assert_max_num_queries(8 + 5 * 2):  # one claim; a start and a finish each
        launcher.fire_catch_ups(decisions)
    runs = Run.objects.filter(reason=Reason.CATCH_UP)
    assert sorted(runs.values_list("schedule_id", flat=True)) == [s.pk for s in schedules]
    assert set(runs.values_list("scheduled_for", flat=True)) == {created + timedelta(minutes=5)}
