"""The run list, run page and timeline as a 1280 by 800 browser window shows them."""

from __future__ import annotations

import re
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from scheduler.models import Executor, Reason, Run, Status
from tests.browser.test_admin import PASSWORD, USERNAME, log_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(600),
]

SCREENSHOTS = Path(tempfile.gettempdir()) / "scheduler-admin-layout"
WIDTH, HEIGHT = 1280, 800


@pytest.fixture
def small_page(browser: Browser):
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def history(make_schedule):
    """A 15-second schedule with a long name and command and an hour of runs, plus a daily one."""
    now = timezone.now().replace(microsecond=0)
    frequent = make_schedule(
        name="Synchronise warehouse stock levels with the storefront",
        command="say",
        args=["--verbosity", "2", "synchronise-warehouse-stock-levels"],
        interval=15,
    )
    daily = make_schedule(name="Nightly report", cron="0 3 * * *")
    runs = []
    for index in range(240):
        fire = now - timedelta(seconds=15 * index)
        status = Status.FAILED if index % 37 == 5 else Status.SUCCEEDED
        runs.append(
            Run(
                schedule=frequent,
                command=frequent.command,
                args=frequent.args,
                reason=Reason.SCHEDULED,
                status=status,
                scheduled_for=fire,
                started_at=fire + timedelta(milliseconds=40),
                finished_at=fire + timedelta(seconds=2),
                exit_code=1 if status == Status.FAILED else 0,
                executor=Executor.PROCESS,
                host="build-agent-07.eu-central-1.compute.internal",
                pid=40000 + index,
            )
        )
    Run.objects.bulk_create(runs)
    Run.objects.create(
        schedule=daily,
        command=daily.command,
        reason=Reason.SCHEDULED,
        status=Status.SUCCEEDED,
        scheduled_for=now - timedelta(hours=2),
        started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=2) + timedelta(seconds=30),
        exit_code=0,
        executor=Executor.TASKS,
        enqueued_at=now - timedelta(hours=2),
        task_id="3f1c9a2e-task",
    )
    return frequent, daily


def test_run_list_fits_1280_pixels_and_shows_seconds(small_page: Page, live_server, history):
    page = small_page
    get_user_model().objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)
    log_in(page, live_server.url)
    SCREENSHOTS.mkdir(exist_ok=True)

    page.goto(f"{live_server.url}/admin/scheduler/run/")
    page.screenshot(path=SCREENSHOTS / "run-list.png")
    headers = page.locator("#result_list thead th")
    assert headers.count() >= 6
    # Visible means left of the filter sidebar too: the table scrolls beneath it otherwise.
    filters = page.locator("#changelist-filter").bounding_box()
    assert filters is not None
    right_edge = min(WIDTH, filters["x"])
    for index in range(headers.count()):
        box = headers.nth(index).bounding_box()
        assert box is not None
        name = headers.nth(index).inner_text()
        assert box["x"] + box["width"] <= right_edge, f"{name!r} cut off at {right_edge} px"
    first_row = page.locator("#result_list tbody tr").first
    for column in ("scheduled_for", "started_at"):
        expect(first_row.locator(f".field-{column}_list_display")).to_have_text(
            re.compile(r"\d{2}:\d{2}:\d{2}")
        )


def test_timeline_zooms_and_shows_one_schedule_linked_from_its_page(
    small_page: Page, live_server, history
):
    page = small_page
    frequent, _daily = history
    get_user_model().objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)
    log_in(page, live_server.url)
    SCREENSHOTS.mkdir(exist_ok=True)

    page.goto(f"{live_server.url}/admin/scheduler/run/timeline/")
    page.screenshot(path=SCREENSHOTS / "timeline-24h.png", full_page=True)
    expect(page.locator("svg.scheduler-timeline text.lane")).to_have_count(2)
    # An hour of 15-second runs is one band in the runs' colour, failures drawn apart.
    bands = page.locator("svg.scheduler-timeline rect.run-band.run-succeeded")
    assert bands.count() >= 1
    expect(page.locator("svg.scheduler-timeline rect.run-failed").first).to_be_visible()

    for span in ("1h", "6h", "7d", "24h"):
        page.get_by_role("link", name=span, exact=True).click()
        expect(page).to_have_url(re.compile(rf"span={span}"))
        expect(page.locator(".timeline-zoom .selected")).to_have_text(span)
        page.screenshot(path=SCREENSHOTS / f"timeline-{span}.png", full_page=True)
    page.get_by_role("link", name="1h", exact=True).click()
    failed = page.locator("svg.scheduler-timeline rect.run-failed").first
    box = failed.bounding_box()
    assert box is not None and box["width"] >= 2

    page.goto(f"{live_server.url}/admin/scheduler/schedule/{frequent.pk}/change/")
    page.get_by_role("link", name="Timeline of this schedule").click()
    expect(page).to_have_url(re.compile(rf"schedule={frequent.pk}"))
    expect(page.locator("svg.scheduler-timeline text.lane")).to_have_count(1)
    expect(page.locator("svg.scheduler-timeline text.lane")).to_contain_text("Synchronise")
    page.get_by_role("link", name="6h", exact=True).click()
    expect(page).to_have_url(re.compile(rf"schedule={frequent.pk}"))
    expect(page.locator("svg.scheduler-timeline text.lane")).to_have_count(1)
    page.screenshot(path=SCREENSHOTS / "timeline-one-schedule-6h.png", full_page=True)


def test_run_page_shows_task_fields_only_for_runs_sent_to_a_task_backend(
    small_page: Page, live_server, history
):
    page = small_page
    frequent, daily = history
    get_user_model().objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)
    log_in(page, live_server.url)
    SCREENSHOTS.mkdir(exist_ok=True)

    process_run = Run.objects.filter(schedule=frequent).first()
    page.goto(f"{live_server.url}/admin/scheduler/run/{process_run.pk}/change/")
    expect(page.locator(".field-started_at_display")).to_be_visible()
    expect(page.locator(".field-task_id")).to_have_count(0)
    expect(page.locator(".field-enqueued_at_display")).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "run-process.png", full_page=True)

    task_run = Run.objects.get(schedule=daily)
    page.goto(f"{live_server.url}/admin/scheduler/run/{task_run.pk}/change/")
    expect(page.locator(".field-task_id")).to_contain_text("3f1c9a2e-task")
    expect(page.locator(".field-enqueued_at_display")).to_be_visible()
