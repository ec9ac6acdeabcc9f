"""Admin: pause actions ask a reason, resume, and the schedule page explains fire times."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from scheduler.models import PAUSED_INDEFINITELY, Schedule

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:scheduler_schedule_changelist"


def act(client, action: str, schedule: Schedule, **extra: str):
    return client.post(
        reverse(CHANGELIST), {"action": action, "_selected_action": [schedule.pk], **extra}
    )


def test_pause_for_an_hour_first_asks_for_a_reason(admin_client, make_schedule):
    schedule = make_schedule()
    response = act(admin_client, "pause_hour", schedule)
    assert response.status_code == 200
    assert 'name="reason"' in response.content.decode()
    schedule.refresh_from_db()
    assert schedule.paused_until is None


def test_pause_for_an_hour_with_a_reason_pauses_and_records_the_user(
    admin_client, admin_user, make_schedule
):
    schedule = make_schedule()
    before = timezone.now()
    act(admin_client, "pause_hour", schedule, apply="1", reason="deploy")
    schedule.refresh_from_db()
    assert (
        before + timedelta(hours=1) <= schedule.paused_until <= timezone.now() + timedelta(hours=1)
    )
    assert (schedule.pause_reason, schedule.paused_by) == ("deploy", admin_user.username)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f"by {admin_user.username}: deploy" in page


def test_pause_until_tomorrow_ends_at_the_next_local_midnight(admin_client, make_schedule):
    schedule = make_schedule()
    act(admin_client, "pause_tomorrow", schedule, apply="1", reason="r")
    schedule.refresh_from_db()
    local = timezone.localtime(schedule.paused_until)
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
    assert timedelta(0) < schedule.paused_until - timezone.now() <= timedelta(days=1, hours=1)


def test_pause_indefinitely_then_resume(admin_client, make_schedule):
    schedule = make_schedule()
    act(admin_client, "pause_indefinitely", schedule, apply="1", reason="r")
    schedule.refresh_from_db()
    assert schedule.paused_until == PAUSED_INDEFINITELY
    assert "paused indefinitely" in admin_client.get(reverse(CHANGELIST)).content.decode()
    act(admin_client, "resume", schedule)
    schedule.refresh_from_db()
    assert not schedule.is_paused(timezone.now())


def test_the_schedule_page_explains_the_last_24_hours(admin_client, make_schedule):
    schedule = make_schedule(interval=3600)
    Schedule.objects.filter(pk=schedule.pk).update(created_at=timezone.now() - timedelta(hours=3))
    page = admin_client.get(
        reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    ).content.decode()
    assert "Why (last 24 hours)" in page
    assert "no scheduler was running" in page
