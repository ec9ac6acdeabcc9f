"""The pool of work in flight: keyed work, draining, and closing."""

from __future__ import annotations

import threading

from scheduler.in_flight import InFlightPool


def test_keyed_work_is_not_submitted_again_while_it_runs():
    pool = InFlightPool(2)
    release = threading.Event()
    calls = []
    try:
        pool.submit_once("mail", lambda: (calls.append(1), release.wait(10)))
        pool.submit_once("mail", calls.append, 2)
        release.set()
        assert pool.drain(timeout=10)
        pool.submit_once("mail", calls.append, 3)
        assert pool.drain(timeout=10)
        assert calls == [1, 3]
    finally:
        pool.shutdown()


def test_drain_waits_for_the_work_in_flight():
    pool = InFlightPool(2)
    release = threading.Event()
    try:
        pool.submit(release.wait, 10)
        assert not pool.drain(timeout=0.1)
        release.set()
        assert pool.drain(timeout=10)
        assert pool.pending() == []
    finally:
        pool.shutdown()


def test_a_closed_pool_takes_no_more_work_and_drops_what_has_not_started():
    pool = InFlightPool(1)
    release = threading.Event()
    started = []
    running = pool.submit(release.wait, 10)
    waiting = pool.submit(started.append, 1)
    assert pool.close() == [running]
    assert waiting is not None and waiting.cancelled()
    assert pool.submit(started.append, 2) is None
    release.set()
    pool.shutdown()
    assert started == []


def test_work_that_raises_is_logged_not_raised(caplog):
    pool = InFlightPool(1, inline=True)
    pool.submit(lambda: 1 / 0)
    assert "failed in the scheduler itself" in caplog.text
