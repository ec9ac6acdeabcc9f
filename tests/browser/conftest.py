"""Fixtures for browser tests: Debian's Chromium driven by Playwright.

Playwright's own browser download cannot work on a machine that reaches only package
registries, so the tests use Debian's ``chromium`` (installed here when missing and
possible) and never run ``playwright install``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests import debian

# Playwright's sync API keeps an asyncio loop running in the main thread for the whole
# session, so Django would refuse every ORM call of the tests with SynchronousOnlyOperation.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")

# Without the background-networking flags Chromium keeps dialling Google services, which
# this closed network refuses; --no-sandbox because the tests may run as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Debian's /usr/bin/chromium, installed with apt-get when missing and we are root."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(
                f"{CHROMIUM} is missing; install Debian's chromium package "
                "(apt-get install chromium) or run the tests as root so they install it"
            )
        try:
            debian.install("chromium")
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        if not CHROMIUM.exists():
            pytest.fail(f"apt-get installed chromium but {CHROMIUM} does not exist")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_executable: Path) -> Iterator[Browser]:
    """One headless Chromium for the session, closed at its end."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(chromium_executable), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies from other tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()
