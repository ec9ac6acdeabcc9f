"""Dead-man pings against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scheduler.models import Reason, Status
from scheduler.pings import drain, ping_url
from scheduler.runner import run_schedule
from tests.conftest import wait_for

FIRE = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def monitor():
    """A monitor on 127.0.0.1 that records request paths; ``/slow`` answers after 10 s,
    ``/late-start/start`` after half a second."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/late-start/start"):
                time.sleep(0.5)  # as if held up on the way: recorded after what came later
            paths.append(self.path)
            if self.path.startswith("/slow"):
                time.sleep(10)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.paths = paths
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("event", "exit_code", "suffix"),
    [
        ("start", None, "/start"),
        ("success", 0, ""),
        ("failure", 3, "/3"),
        ("failure", -9, "/fail"),
        ("failure", None, "/fail"),
    ],
)
def test_ping_urls_follow_the_healthchecks_convention(event, exit_code, suffix):
    assert (
        ping_url("https://hc.example/abc/", event, exit_code) == "https://hc.example/abc" + suffix
    )


@pytest.mark.django_db
def test_a_run_pings_start_then_success(monitor, make_schedule):
    schedule = make_schedule(executor="thread", ping_url=f"{monitor.url}/check")
    run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    wait_for(lambda: len(monitor.paths) == 2, 5)
    assert monitor.paths == ["/check/start", "/check"]


@pytest.mark.django_db
def test_a_slow_start_ping_still_arrives_before_the_success_ping(monitor, make_schedule):
    schedule = make_schedule(executor="thread", ping_url=f"{monitor.url}/late-start")
    run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    wait_for(lambda: len(monitor.paths) == 2, 5)
    assert monitor.paths == ["/late-start/start", "/late-start"]


@pytest.mark.django_db
def test_a_failed_run_pings_its_exit_code(monitor, make_schedule):
    schedule = make_schedule(
        executor="thread", command="fail_with", args=["3"], ping_url=f"{monitor.url}/check"
    )
    run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    wait_for(lambda: "/check/3" in monitor.paths, 5)


@pytest.mark.django_db
def test_a_slow_monitor_neither_delays_nor_fails_the_run(monitor, make_schedule, settings):
    settings.SCHEDULER = {"PING_TIMEOUT": 1.0}
    schedule = make_schedule(executor="thread", ping_url=f"{monitor.url}/slow")
    started = time.monotonic()
    run = run_schedule(schedule.pk, FIRE, Reason.SCHEDULED)
    assert time.monotonic() - started < 1
    assert run.status == Status.SUCCEEDED
    drain(5)  # let the timed-out pings finish inside the test
