"""Retries: each attempt its own run, queued in the database, mailed about at the end."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from scheduler.in_flight import InFlightPool
from scheduler.launcher import Launcher
from scheduler.models import Reason, Run, Status
from scheduler.owners import Owner
from scheduler.retries import plan_retry, retry_delay
from scheduler.runner import finished
from tests.conftest import wait_for

FAST = {"POLL_INTERVAL": 0.2, "HEARTBEAT_INTERVAL": 1}


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_command_failing_twice_is_retried_until_it_succeeds_once_without_mail(
    start_daemon, make_schedule, tmp_path
):
    mail = tmp_path / "mail"
    mail.mkdir()
    env = {"SCHEDULER_TEST_MAIL_DIR": str(mail)}
    counter = tmp_path / "counter"
    start_daemon(settings=FAST, env=env)
    start_daemon(settings=FAST, env=env)
    # A fire time far away: only the first run, started by hand, and its retries happen.
    schedule = make_schedule(
        command="fail_first",
        args=["2", str(counter)],
        cron="0 0 1 1 *",
        retries=3,
        retry_delay=1,
    )
    first = Run.claim_manual(schedule)

    def attempts():
        runs = list(Run.objects.filter(schedule=schedule).order_by("attempt"))
        return runs if runs and runs[-1].status == Status.SUCCEEDED else None

    runs = wait_for(attempts, 30)
    assert [run.status for run in runs] == [Status.FAILED, Status.FAILED, Status.SUCCEEDED]
    assert [run.attempt for run in runs] == [1, 2, 3]
    assert [run.reason for run in runs] == [Reason.MANUAL, Reason.RETRY, Reason.RETRY]
    assert [run.first_attempt_id for run in runs] == [None, first.pk, first.pk]
    assert runs[2].started_at - runs[1].finished_at >= runs[2].run_after - runs[2].created_at
    assert counter.read_text() == "3"
    assert list(mail.iterdir()) == []


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_last_failed_attempt_is_mailed_once(start_daemon, make_schedule, tmp_path):
    mail = tmp_path / "mail"
    mail.mkdir()
    start_daemon(settings=FAST, env={"SCHEDULER_TEST_MAIL_DIR": str(mail)})
    schedule = make_schedule(
        command="fail_first",
        args=["5", str(tmp_path / "counter")],
        cron="0 0 1 1 *",
        retries=1,
        retry_delay=1,
    )
    Run.claim_manual(schedule)

    def ended():
        runs = list(Run.objects.filter(schedule=schedule).order_by("attempt"))
        done = len(runs) == 2 and runs[-1].status == Status.FAILED
        written = [path.read_text() for path in mail.iterdir()]
        return (runs, written) if done and all(written) and written else None

    runs, messages = wait_for(ended, 30)
    assert [run.notified_at is not None for run in runs] == [True, True]
    (message,) = messages
    assert f"/scheduler/run/{runs[1].pk}/" in message


FIRE = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def ended(schedule, status=Status.FAILED, **fields) -> Run:
    """A run of ``schedule`` for FIRE that ended with ``status``."""
    run = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, owner=Owner("box", 1))
    Run.objects.filter(pk=run.pk).update(status=status, finished_at=FIRE, **fields)
    run.refresh_from_db()
    return run


def test_retry_delay_doubles_for_each_retry_up_to_one_day():
    assert retry_delay(10, 2) == timedelta(seconds=10)
    assert retry_delay(10, 3) == timedelta(seconds=20)
    assert retry_delay(10, 5) == timedelta(seconds=80)
    assert retry_delay(3600, 11) == timedelta(days=1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"retries": 11}, "retries", "At most 10 retries."),
        ({"retry_delay": 86401}, "retry_delay", "At most 86400 seconds (one day)."),
        ({"retries": 2, "retry_delay": 0}, "retry_delay", "Must be at least one second"),
    ],
)
def test_retry_settings_out_of_bounds_are_refused_with_a_clear_message(
    make_schedule, fields, field, message
):
    with pytest.raises(ValidationError) as refused:
        make_schedule(**fields)
    assert message in " ".join(refused.value.message_dict[field])


@pytest.mark.django_db
def test_failed_run_is_retried_as_a_queued_run_keeping_fire_time_and_args(make_schedule):
    schedule = make_schedule(args=["first"], retries=2, retry_delay=30)
    run = ended(schedule, args=["as it ran"])
    now = FIRE + timedelta(minutes=1)

    retry = plan_retry(run, now)

    assert (retry.reason, retry.status, retry.attempt) == (Reason.RETRY, Status.QUEUED, 2)
    assert retry.first_attempt_id == run.pk
    assert retry.scheduled_for == FIRE
    assert retry.args == ["as it ran"]
    assert retry.run_after == now + timedelta(seconds=30)
    run.refresh_from_db()
    assert run.notified_at is not None  # its mail is the last attempt's


@pytest.mark.django_db
def test_each_attempt_is_planned_once_and_no_more_than_retries(make_schedule):
    schedule = make_schedule(retries=1, retry_delay=5)
    run = ended(schedule, Status.TIMED_OUT)
    retry = plan_retry(run, FIRE)
    assert plan_retry(run, FIRE) is None  # already planned, by this or another process
    Run.objects.filter(pk=retry.pk).update(status=Status.FAILED)
    retry.refresh_from_db()
    assert plan_retry(retry, FIRE) is None
    assert Run.objects.filter(schedule=schedule).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.INTERRUPTED, Status.SKIPPED])
def test_only_failed_and_timed_out_runs_are_retried(make_schedule, status):
    assert plan_retry(ended(make_schedule(retries=3), status), FIRE) is None


@pytest.mark.django_db
def test_retried_attempt_sends_no_mail_and_last_failed_one_does(
    make_schedule, settings, mailoutbox
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    schedule = make_schedule(retries=1)
    first = ended(schedule)
    retry = plan_retry(first, FIRE)
    finished(first)
    Run.objects.filter(pk=retry.pk).update(status=Status.FAILED, finished_at=FIRE)
    retry.refresh_from_db()
    assert plan_retry(retry, FIRE) is None
    finished(retry)
    assert len(mailoutbox) == 1
    assert f"/scheduler/run/{retry.pk}/" in mailoutbox[0].body


@pytest.mark.django_db
def test_retry_starts_only_after_its_run_after(make_schedule):
    schedule = make_schedule(retries=1, retry_delay=60, executor="thread")
    retry = plan_retry(ended(schedule), FIRE)
    pool = InFlightPool(2, inline=True)
    launcher = Launcher(
        pool,
        stop=threading.Event(),
        stopping=threading.Event(),
        late_fire=timedelta(seconds=5),
        on_unclaimed=lambda schedule_id: None,
    )
    launcher.start_queued(retry.run_after - timedelta(seconds=1))
    pool.drain(10)
    assert Run.objects.get(pk=retry.pk).status == Status.QUEUED
    launcher.start_queued(retry.run_after)
    pool.drain(10)
    assert Run.objects.get(pk=retry.pk).status == Status.SUCCEEDED


@pytest.mark.django_db
def test_due_retry_waits_while_its_skip_schedule_is_busy_and_a_waiting_one_blocks_nothing(
    make_schedule,
):
    schedule = make_schedule(retries=1, retry_delay=1)
    retry = plan_retry(ended(schedule), FIRE)
    later = Run.claim(schedule.pk, FIRE + timedelta(hours=1), Reason.SCHEDULED, owner=Owner("b", 2))
    assert later.status == Status.RUNNING  # a retry waiting does not make the schedule busy
    assert not retry.start(owner=Owner("box", 3))
    assert Run.objects.get(pk=retry.pk).status == Status.QUEUED
    Run.objects.filter(pk=later.pk).update(status=Status.SUCCEEDED)
    assert retry.start(owner=Owner("box", 3))
    assert retry.status == Status.RUNNING


@pytest.mark.django_db
def test_waiting_tasks_retry_does_not_block_new_fire_times(make_schedule):
    schedule = make_schedule(executor="tasks", retries=1, retry_delay=3600)
    plan_retry(ended(schedule), timezone.now())
    later = Run.claim(schedule.pk, FIRE + timedelta(hours=1), Reason.SCHEDULED, owner=Owner("b", 2))
    assert later.status == Status.QUEUED  # handed to a worker, not skipped
