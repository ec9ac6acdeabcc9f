"""Admin: the backfill form and progress on a schedule, a run's other attempts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from scheduler.models import Reason, Run, Status
from scheduler.owners import Owner
from scheduler.retries import plan_retry

pytestmark = pytest.mark.django_db

FIRE = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def test_first_attempt_page_shows_the_attempt_that_succeeded(admin_client, make_schedule):
    schedule = make_schedule(retries=3)
    first = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, owner=Owner("box", 1))
    Run.objects.filter(pk=first.pk).update(status=Status.FAILED)
    first.refresh_from_db()
    second = plan_retry(first, FIRE)
    Run.objects.filter(pk=second.pk).update(status=Status.FAILED)
    second.refresh_from_db()
    third = plan_retry(second, FIRE)
    Run.objects.filter(pk=third.pk).update(status=Status.SUCCEEDED)

    page = admin_client.get(reverse("admin:scheduler_run_change", args=[first.pk])).content
    text = page.decode()
    assert "Retried: attempt 3 succeeded" in text
    assert reverse("admin:scheduler_run_change", args=[third.pk]) in text


def test_backfill_form_dry_run_lists_and_submit_queues_with_progress(admin_client, make_schedule):
    schedule = make_schedule(cron="0 3 * * *", timezone="UTC")
    url = reverse("admin:scheduler_schedule_backfill", args=[schedule.pk])
    form = {"start": "2026-03-01", "end": "2026-03-03"}

    listed = admin_client.post(url, {**form, "dry_run": "on"}).content.decode()
    assert "Would queue 3 of 3 fire time(s)" in listed
    assert not Run.objects.exists()

    admin_client.post(url, form)
    runs = Run.objects.filter(schedule=schedule, reason=Reason.BACKFILL, status=Status.QUEUED)
    assert runs.count() == 3
    Run.objects.filter(pk=runs.order_by("scheduled_for")[0].pk).update(status=Status.SUCCEEDED)
    page = admin_client.get(reverse("admin:scheduler_schedule_change", args=[schedule.pk]))
    assert "Backfill: 1 of 3 done." in page.content.decode()


def test_backfill_form_refuses_a_bad_date_and_needs_run_permission(
    client, admin_client, make_schedule
):
    schedule = make_schedule(cron="0 3 * * *")
    url = reverse("admin:scheduler_schedule_backfill", args=[schedule.pk])
    page = admin_client.post(url, {"start": "March", "end": "2026-03-03"}).content.decode()
    assert "is not an ISO date" in page

    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="change_schedule"))
    client.force_login(user)
    assert client.post(url, {"start": "2026-03-01", "end": "2026-03-03"}).status_code == 403
    assert not Run.objects.exists()
