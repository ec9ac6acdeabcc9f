"""Retries: each attempt its own run, queued in the database, mailed about at the end."""

from __future__ import annotations

import pytest

from scheduler.models import Reason, Run, Status
from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST = {"POLL_INTERVAL": 0.2, "HEARTBEAT_INTERVAL": 1}


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
    first = Run.enqueue_manual(schedule)

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
    Run.enqueue_manual(schedule)

    def ended():
        runs = list(Run.objects.filter(schedule=schedule).order_by("attempt"))
        done = len(runs) == 2 and runs[-1].status == Status.FAILED
        return runs if done and list(mail.iterdir()) else None

    runs = wait_for(ended, 30)
    assert [run.notified_at is not None for run in runs] == [True, True]
    (message,) = mail.iterdir()
    assert f"/scheduler/run/{runs[1].pk}/" in message.read_text()
