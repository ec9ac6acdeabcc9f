"""Pausing and editing a schedule in a real browser: the pause state and the edit history."""

from __future__ import annotations

import re
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Page, expect

from scheduler.history import changed_by
from scheduler.models import Heartbeat, Schedule, ScheduleChange
from tests.browser.test_admin import PASSWORD, USERNAME, log_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(600),
]

SCREENSHOTS = Path(tempfile.gettempdir()) / "scheduler-admin-steer"


def test_admin_pauses_with_a_reason_shows_who_why_until_and_the_edit_history_then_resumes(
    page: Page, live_server, make_schedule
) -> None:
    get_user_model().objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)
    schedule = make_schedule(name="Import supplier prices", interval=300, timeout=60)
    SCREENSHOTS.mkdir(exist_ok=True)
    log_in(page, live_server.url)
    changelist = f"{live_server.url}/admin/scheduler/schedule/"
    change_page = f"{changelist}{schedule.pk}/change/"

    # Pause for an hour through the list's action; the reason is required.
    page.goto(changelist)
    page.locator(f'input[name="_selected_action"][value="{schedule.pk}"]').check()
    page.select_option('select[name="action"]', "pause_hour")
    # The actions' submit button: "Go" on Django 5.2, "Run" on 6.0.
    page.locator(".actions").get_by_role("button", name=re.compile(r"^(Go|Run)$")).click()
    expect(page.get_by_text("Pause for an hour:")).to_be_visible()
    # The browser itself refuses an empty reason: the form stays, nothing is paused.
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text("Pause for an hour:")).to_be_visible()
    assert not Schedule.objects.get(pk=schedule.pk).paused_by
    page.fill('[name="reason"]', "supplier API down for maintenance")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".messagelist")).to_contain_text("Paused 1 schedule(s) for an hour.")

    schedule.refresh_from_db()
    assert schedule.paused_by == USERNAME
    until = re.compile(r"paused until \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} by admin")
    row = page.locator("#result_list tbody tr", has_text="Import supplier prices")
    expect(row.locator(".field-pause_display")).to_have_text(until)
    expect(row.locator(".field-pause_display")).to_contain_text("supplier API down for maintenance")
    # In view without scrolling sideways, in a 1280 px window with the nav sidebar open.
    page.screenshot(path=SCREENSHOTS / "list-paused.png", full_page=True)
    box = row.locator(".field-pause_display").bounding_box()
    results = page.locator(".results").bounding_box()
    assert box is not None and results is not None
    assert box["x"] + box["width"] <= results["x"] + results["width"], (box, results)
    page.screenshot(path=SCREENSHOTS / "list-paused.png", full_page=True)

    # The schedule's page says the same; an edit there shows in its history, old → new.
    page.goto(change_page)
    pause = page.locator(".field-pause_display .readonly")
    expect(pause).to_have_text(until)
    expect(pause).to_contain_text("supplier API down for maintenance")
    page.fill("#id_timeout", "90")
    page.locator('input[name="_continue"]').click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    history = page.locator(".field-edit_history_display table.schedule-history")
    edit = history.locator("tr", has_text="timeout: 60 → 90")
    expect(edit).to_have_count(1)
    expect(edit).to_contain_text(USERNAME)
    expect(edit).to_contain_text("admin")
    paused_row = history.locator("tr", has_text="pause_reason: '' → 'supplier API down")
    expect(paused_row).to_have_count(1)
    expect(paused_row).to_contain_text(USERNAME)
    expect(paused_row).to_contain_text("paused_by: '' → 'admin'")
    page.locator(".field-edit_history_display").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "change-history.png", full_page=True)

    # Resume from the list: the pause state goes, and the history records it.
    page.goto(changelist)
    page.locator(f'input[name="_selected_action"][value="{schedule.pk}"]').check()
    page.select_option('select[name="action"]', "resume")
    # The actions' submit button: "Go" on Django 5.2, "Run" on 6.0.
    page.locator(".actions").get_by_role("button", name=re.compile(r"^(Go|Run)$")).click()
    expect(page.locator(".messagelist")).to_contain_text("Resumed 1 schedule(s).")
    expect(row.locator(".field-pause_display")).to_have_text("—")
    page.goto(change_page)
    expect(page.locator(".field-pause_display .readonly")).to_have_text("—")
    resumed_row = page.locator(
        ".field-edit_history_display tr",
        has_text="pause_reason: 'supplier API down for maintenance' → ''",
    )
    expect(resumed_row).to_have_count(1)
    expect(resumed_row).to_contain_text(USERNAME)
    page.screenshot(path=SCREENSHOTS / "change-resumed.png", full_page=True)
    assert not Schedule.objects.get(pk=schedule.pk).is_paused(timezone.now())


def test_timeline_marks_fire_times_that_did_not_run_with_the_outcome_in_a_tooltip(
    page: Page, live_server, make_schedule
) -> None:
    get_user_model().objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)
    now = timezone.now()
    schedule = make_schedule(name="Hourly export", cron="0 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(created_at=now - timedelta(hours=12))
    schedule.refresh_from_db()
    with changed_by("alice", "admin"):
        schedule.pause(until=None, reason="warehouse move", by="alice")
    ScheduleChange.objects.filter(schedule=schedule, changed_by="alice").update(
        changed_at=now - timedelta(hours=3, minutes=30)
    )
    Heartbeat.objects.create(host="box", pid=1, started_at=now - timedelta(hours=6, minutes=30))
    SCREENSHOTS.mkdir(exist_ok=True)
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/scheduler/run/timeline/?schedule={schedule.pk}")
    svg = page.locator("svg.scheduler-timeline")
    for outcome in ("before the schedule existed", "no scheduler was running", "paused"):
        expect(svg.locator(f'rect.missed[data-outcome="{outcome}"]').first).to_be_visible()
    paused = svg.locator('rect.missed[data-outcome="paused"]').last
    expect(paused.locator("title")).to_contain_text("by alice: warehouse move")
    expect(svg).to_contain_text("Fire time did not run:")
    page.screenshot(path=SCREENSHOTS / "timeline-missed.png", full_page=True)
