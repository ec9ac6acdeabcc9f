"""Dead-man monitor pings (healthchecks.io style), sent beside the run, never in its way.

A slow or unreachable monitor must neither delay nor fail a run, so pings go through a
small pool of background threads with a short timeout, and their failures are only logged.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor, wait

from .conf import conf

logger = logging.getLogger("scheduler.pings")

_pool: ThreadPoolExecutor | None = None
_pending: set[Future[None]] = set()
_last_by_base: dict[str, Future[None]] = {}
_lock = threading.Lock()


def ping_url(base: str, event: str, exit_code: int | None = None) -> str:
    """``start`` → ``…/start``; ``success`` → the URL itself; a failure → ``…/<exit code>``
    when there is one, else ``…/fail``."""
    base = base.rstrip("/")
    if event == "start":
        return f"{base}/start"
    if event == "success":
        return base
    return f"{base}/{exit_code}" if exit_code is not None and exit_code > 0 else f"{base}/fail"


def send(url: str) -> None:
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "runscheduler"})
        with urllib.request.urlopen(request, timeout=conf.PING_TIMEOUT) as response:
            response.read(1024)
    except Exception as exc:
        logger.warning("Ping %s failed: %s", url, exc)


def ping(base: str, event: str, exit_code: int | None = None) -> None:
    """Send a ping in the background, after the pings already on their way to ``base``.

    A monitor must see a run's ``/start`` before its success or failure, so the pings of
    one URL go one after another while different URLs go side by side.
    """
    if not base:
        return
    url = ping_url(base, event, exit_code)
    done: Future[None] = Future()
    with _lock:
        previous = _last_by_base.get(base)
        _last_by_base[base] = done
        _pending.add(done)

    def finished(_: Future[None]) -> None:
        with _lock:
            _pending.discard(done)
            if _last_by_base.get(base) is done:
                del _last_by_base[base]
        done.set_result(None)

    def submit(_: Future[None] | None = None) -> None:
        _executor().submit(send, url).add_done_callback(finished)

    if previous is None:
        submit()
    else:
        previous.add_done_callback(submit)


def _executor() -> ThreadPoolExecutor:
    """Return the ping threads, started on first use rather than at import."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="scheduler-ping")
        return _pool


def drain(timeout: float) -> None:
    """Give pings still on their way up to ``timeout`` seconds (at daemon shutdown)."""
    with _lock:
        pending = list(_pending)
    wait(pending, timeout=timeout)
