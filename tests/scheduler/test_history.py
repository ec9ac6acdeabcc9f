"""Every edit of a schedule is kept: who, when, from where, each field's old and new value."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from scheduler.crontab import apply, parse_crontab, review
from scheduler.declared import sync_declared
from scheduler.models import Schedule, ScheduleChange

pytestmark = pytest.mark.django_db


def test_an_orm_save_records_each_changed_field_with_old_and_new_value(make_schedule):
    schedule = make_schedule(name="s", interval=60)
    schedule.interval, schedule.catch_up = 120, False
    schedule.save()
    change = schedule.changes.first()
    assert (change.action, change.source, change.changed_by) == ("changed", "orm", "")
    assert change.changes == {"interval": [60, 120], "catch_up": [True, False]}


def test_creation_is_recorded_and_a_save_changing_nothing_is_not(make_schedule):
    schedule = make_schedule(name="s")
    schedule.save()
    assert [c.action for c in schedule.changes.all()] == ["created"]
    assert schedule.changes.get().changes["name"] == [None, "s"]


def test_deletion_is_recorded_and_the_history_outlives_the_schedule(make_schedule):
    schedule = make_schedule(name="gone")
    schedule.delete()
    actions = list(
        ScheduleChange.objects.filter(schedule_name="gone").values_list("action", flat=True)
    )
    assert actions == ["deleted", "created"]


def test_an_admin_edit_is_recorded_as_the_signed_in_users(admin_client, admin_user, make_schedule):
    schedule = make_schedule()
    admin_client.post(
        reverse("admin:scheduler_schedule_changelist"),
        {"action": "disable", "_selected_action": [schedule.pk]},
    )
    change = schedule.changes.first()
    assert (change.changed_by, change.source) == (admin_user.username, "admin")
    assert change.changes == {"enabled": [True, False]}


def test_the_schedule_page_shows_its_history_of_edits(admin_client, make_schedule):
    schedule = make_schedule(interval=60)
    schedule.interval = 90
    schedule.save()
    page = admin_client.get(
        reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    ).content.decode()
    assert "History of edits" in page
    assert "interval: 60 → 90" in page


def test_code_declared_sync_is_recorded_as_coming_from_settings():
    sync_declared({"nightly": {"command": "say", "args": ["hi"], "cron": "0 3 * * *"}})
    change = Schedule.objects.get(name="nightly").changes.get()
    assert (change.source, change.changed_by) == ("code", 'SCHEDULER["SCHEDULES"]')


def test_a_crontab_import_is_recorded_as_coming_from_the_import():
    with override_settings(SCHEDULER={"ALLOWED_COMMANDS": ["say"]}):
        parsed = parse_crontab(
            "0 3 * * * cd /srv && python manage.py say hello\n",
            timezone="UTC",
            settings_module="tests.settings",
            system=False,
        )
        apply(review(parsed, timezone.now()))
    assert ScheduleChange.objects.get().source == "crontab"


def test_a_pause_from_the_command_line_is_recorded_as_the_cli(make_schedule):
    schedule = make_schedule(name="s")
    call_command("schedules", "pause", "s", "--for", "1h", "--reason", "x", stdout=StringIO())
    change = schedule.changes.first()
    assert change.source == "cli"
    assert change.changes["pause_reason"] == ["", "x"]


def test_a_save_of_some_fields_records_only_those_even_from_a_stale_instance(make_schedule):
    schedule = make_schedule(name="s", interval=60)
    stale = Schedule.objects.get(pk=schedule.pk)
    schedule.interval = 120
    schedule.save()
    stale.pause(until=None, reason="r", by="alice")
    assert set(stale.changes.first().changes) == {"paused_until", "pause_reason", "paused_by"}
