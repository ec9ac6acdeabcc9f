"""The admin in a real browser: log in, add a schedule, run it now, read its output."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from scheduler.models import Reason, Run, Schedule

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    # The first browser test of a session may install Debian's chromium with apt-get.
    pytest.mark.timeout(600),
]

USERNAME = "admin"
PASSWORD = "correct horse battery staple"


def log_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def reload_until(page: Page, texts: list[str], timeout: float = 15) -> None:
    """Reload the page about once a second until every one of ``texts`` is on it."""
    deadline = time.monotonic() + timeout
    while True:
        body = page.locator("body").inner_text()
        if all(text in body for text in texts):
            return
        if time.monotonic() > deadline:
            missing = [text for text in texts if text not in body]
            raise AssertionError(f"{missing} not on {page.url} after {timeout} s:\n{body}")
        time.sleep(1)
        page.reload()


def test_admin_refuses_bad_cron_then_creates_schedule_and_run_now_shows_output(
    page: Page, live_server, start_daemon, tmp_path: Path
) -> None:
    get_user_model().objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)
    start_daemon()
    log_in(page, live_server.url)

    # A cron expression with hour 25 is refused with the parser's reason; nothing is saved.
    page.goto(f"{live_server.url}/admin/scheduler/schedule/add/")
    page.fill("#id_name", "Browser greeting")
    page.fill("#id_command", "say")
    page.fill("#id_args", '["browser"]')
    page.fill("#id_cron", "0 25 * * *")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-cron .errorlist")).to_contain_text("Bad hour")
    assert not Schedule.objects.exists()
    page.screenshot(path=tmp_path / "bad-cron.png", full_page=True)

    # Fixed, it saves and the changelist lists it.
    page.fill("#id_cron", "*/5 * * * *")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/scheduler/schedule/$"))
    schedule = Schedule.objects.get()
    assert (schedule.command, schedule.args, schedule.cron) == ("say", ["browser"], "*/5 * * * *")
    row = page.locator("#result_list tbody tr", has_text="Browser greeting")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("say browser")
    changelist_png = tmp_path / "changelist.png"
    page.screenshot(path=changelist_png, full_page=True)
    assert changelist_png.stat().st_size > 0

    # Run now queues a manual run and links to it.
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "run_now")
    # The actions' submit button: "Go" on Django 5.2, "Run" on 6.0.
    page.locator(".actions").get_by_role("button", name=re.compile(r"^(Go|Run)$")).click()
    message = page.locator("ul.messagelist li.success")
    expect(message).to_contain_text("Queued")
    # The daemon may also fire the schedule meanwhile, at a five-minute mark of the clock.
    run = Run.objects.get(schedule=schedule, reason=Reason.MANUAL)
    link = message.get_by_role("link", name=f"run #{run.pk}")
    expect(link).to_have_attribute("href", f"/admin/scheduler/run/{run.pk}/change/")
    page.screenshot(path=tmp_path / "queued.png", full_page=True)

    # The daemon picks the run up within seconds; its page shows the status and the output.
    link.click()
    expect(page).to_have_url(re.compile(rf"/admin/scheduler/run/{run.pk}/change/$"))
    reload_until(page, ["Succeeded", "stdout browser 0", "print browser 0"])
    expect(page.locator(".field-status_display")).to_contain_text("Succeeded")
    expect(page.locator(".field-stdout_display")).to_contain_text("stdout browser 0")
    expect(page.locator(".field-stdout_display")).to_contain_text("print browser 0")
    run_png = tmp_path / "run.png"
    page.screenshot(path=run_png, full_page=True)
    assert run_png.stat().st_size > 0
