from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail
from django.test import override_settings

from scheduler.models import Notify, Reason, Run, Status
from scheduler.owners import Owner
from scheduler.runner import finished, run_schedule
from scheduler.signals import run_finished

FIRE = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ADMINS = [("Ops", "ops@example.com")]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mail_admins_on")]


@pytest.fixture
def mail_admins_on(settings):
    settings.ADMINS = ADMINS
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def run_thread(make_schedule, **fields) -> Run:
    schedule = make_schedule(executor="thread", **fields)
    return run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)


def test_a_failed_run_mails_admins_once_with_its_output(make_schedule):
    run = run_thread(make_schedule, command="fail_with", args=["3"])
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert "failed (exit code 3)" in message.subject
    assert "CommandError: failing on purpose with 3" in message.body
    assert f"/admin/scheduler/run/{run.pk}/change/" in message.body
    finished(run)  # seen again (another process, a retry): still one mail
    assert len(mail.outbox) == 1


def test_a_successful_run_mails_only_when_asked_to(make_schedule):
    run_thread(make_schedule)
    assert mail.outbox == []
    run_thread(make_schedule, notify=Notify.ALWAYS)
    assert len(mail.outbox) == 1
    assert "succeeded" in mail.outbox[0].subject


def test_never_means_never(make_schedule):
    run_thread(make_schedule, command="explode", args=[], notify=Notify.NEVER)
    assert mail.outbox == []


@override_settings(ADMINS=[])
def test_no_admins_no_mail(make_schedule):
    run_thread(make_schedule, command="explode", args=[])
    assert mail.outbox == []


def test_interrupted_runs_of_a_dead_daemon_are_mailed_too(make_schedule):
    schedule = make_schedule()
    run = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, owner=Owner("gone", 1))
    Run.objects.filter(pk=run.pk).update(status=Status.INTERRUPTED)
    run.refresh_from_db()
    finished(run)
    assert "interrupted" in mail.outbox[0].subject


def test_run_finished_signal_is_sent_after_every_run(make_schedule):
    seen = []

    def receiver(sender, run, **kwargs):
        seen.append((run.pk, run.status))

    run_finished.connect(receiver)
    try:
        run = run_thread(make_schedule)
    finally:
        run_finished.disconnect(receiver)
    assert seen == [(run.pk, Status.SUCCEEDED)]


def test_a_failing_receiver_does_not_break_the_run(make_schedule):
    def broken(sender, run, **kwargs):
        raise RuntimeError("alerting is down")

    run_finished.connect(broken)
    try:
        run = run_thread(make_schedule)
    finally:
        run_finished.disconnect(broken)
    assert run.status == Status.SUCCEEDED
