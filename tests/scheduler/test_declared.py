from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings
from django.urls import reverse

from scheduler.declared import sync_declared
from scheduler.models import Run, Schedule

pytestmark = pytest.mark.django_db

NIGHTLY = {"command": "nightly_batch", "cron": "30 3 * * *", "timezone": "Europe/Berlin"}


def test_declared_schedules_are_created_and_marked_as_code():
    report = sync_declared({"Nightly": NIGHTLY})
    schedule = Schedule.objects.get(name="Nightly")
    assert report["created"] == ["Nightly"]
    assert schedule.defined_in_code
    assert (schedule.command, schedule.cron, schedule.timezone) == (
        "nightly_batch",
        "30 3 * * *",
        "Europe/Berlin",
    )


def test_a_changed_declaration_updates_the_row_and_an_unchanged_one_does_not():
    sync_declared({"Nightly": NIGHTLY})
    before = Schedule.objects.get().updated_at
    assert sync_declared({"Nightly": NIGHTLY})["updated"] == []
    assert Schedule.objects.get().updated_at == before
    report = sync_declared({"Nightly": {**NIGHTLY, "cron": None, "interval": 3600}})
    assert report["updated"] == ["Nightly"]
    schedule = Schedule.objects.get()
    assert (schedule.cron, schedule.interval) == ("", 3600)


def test_fields_the_code_does_not_set_stay_as_the_operator_left_them():
    sync_declared({"Nightly": NIGHTLY})
    Schedule.objects.filter(name="Nightly").update(enabled=False, jitter=30)
    sync_declared({"Nightly": NIGHTLY})
    schedule = Schedule.objects.get()
    assert (schedule.enabled, schedule.jitter) == (False, 30)


def test_a_schedule_removed_from_code_is_disabled_and_keeps_its_history():
    sync_declared({"Nightly": NIGHTLY})
    schedule = Schedule.objects.get()
    Run.claim_manual(schedule)
    assert sync_declared({})["disabled"] == ["Nightly"]
    schedule.refresh_from_db()
    assert not schedule.enabled
    assert not schedule.defined_in_code
    assert schedule.runs.count() == 1


def test_an_invalid_declaration_is_reported_and_skipped():
    report = sync_declared({"Broken": {"command": "nightly_batch", "cron": "0 25 * * *"}})
    assert report["invalid"] == ["Broken"]
    assert not Schedule.objects.exists()


@override_settings(SCHEDULER={"SCHEDULES": {"Broken": {"command": "no_such", "interval": 0}}})
def test_system_check_reports_invalid_declarations():
    errors = [error for error in run_checks() if error.id and error.id.startswith("scheduler.")]
    assert [error.id for error in errors] == ["scheduler.E009"]
    assert "Unknown management command" in errors[0].msg


@override_settings(SCHEDULER={"SCHEDULES": {"Nightly": NIGHTLY}})
def test_admin_shows_the_fields_code_owns_as_read_only(admin_client):
    sync_declared({"Nightly": NIGHTLY})
    schedule = Schedule.objects.get()
    page = admin_client.get(reverse("admin:scheduler_schedule_change", args=[schedule.pk]))
    fields = page.context["adminform"].form.fields
    assert "cron" not in fields
    assert "command" not in fields
    assert "name" not in fields
    assert "jitter" in fields


def test_a_schedule_declared_again_after_removal_is_enabled_again():
    sync_declared({"Nightly": NIGHTLY})
    sync_declared({})
    sync_declared({"Nightly": NIGHTLY})
    schedule = Schedule.objects.get()
    assert schedule.enabled
    assert schedule.defined_in_code
