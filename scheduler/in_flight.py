"""The daemon's pool of work in flight: runs, and upkeep that must not hold up the loop.

The loop thread plans and decides; everything that may take long (a command, mail, a
prune, asking a task backend) goes to this thread pool. It keeps the futures of work
not yet finished, so shutdown can wait for them, and keyed work, so upkeep submitted
each tick is not started again while its previous round still runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.db import DatabaseError, close_old_connections

logger = logging.getLogger("scheduler.daemon")


class InFlightPool:
    """Run work in pool threads and keep track of it until it has finished.

    With ``inline``, work runs in the submitting thread instead, on its database
    connection as it is (so inside a test's transaction).
    """

    def __init__(self, max_workers: int, *, inline: bool = False) -> None:
        self.max_workers = max_workers
        self.inline = inline
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="scheduler-run"
        )
        self._futures: set[Future[None]] = set()
        self._lock = threading.RLock()  # a cancelled future calls _forget at once
        self._closed = False  # under _lock: shutting down, nothing more is submitted
        self._by_key: dict[Hashable, Future[None]] = {}
        # Work submitted so far: upkeep looks for runs to resolve more often after some.
        self.submitted = 0

    def submit(self, func: Callable[..., object], *args: Any, **kwargs: Any) -> Future[None] | None:
        """Run ``func`` in the pool; return None once :meth:`close` began."""
        self.submitted += 1
        if self.inline:
            future: Future[None] = Future()
            log_failure(func, *args, **kwargs)
            future.set_result(None)
            return future
        with self._lock:
            if self._closed:
                return None
            future = self._executor.submit(call, func, *args, **kwargs)
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def submit_once(
        self, key: Hashable, func: Callable[..., object], *args: Any, **kwargs: Any
    ) -> None:
        """Submit, unless the work last submitted under ``key`` has not finished yet.

        Only the loop thread submits keyed work, so check-then-submit needs no lock.
        """
        self._by_key = {k: job for k, job in self._by_key.items() if not job.done()}
        if key in self._by_key:
            return
        future = self.submit(func, *args, **kwargs)
        if future is not None:
            self._by_key[key] = future

    def pending(self) -> list[Future[None]]:
        """Return the futures of the work submitted and not finished yet."""
        with self._lock:
            return [future for future in self._futures if not future.done()]

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the work in flight has finished; return whether it all did."""
        return not futures.wait(self.pending(), timeout=timeout).not_done

    def close(self) -> list[Future[None]]:
        """Accept no more work, drop what has not started, and return what is running.

        Under the lock, so no work is submitted after the snapshot unseen (and left to
        start its command unwaited for).
        """
        with self._lock:
            self._closed = True
            self._executor.shutdown(wait=False, cancel_futures=True)
            return [future for future in self._futures if not future.done()]

    def shutdown(self, *, wait: bool = True) -> None:
        """Close the pool and, with ``wait``, wait for the work still running."""
        self.close()
        self._executor.shutdown(wait=wait)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)


def call(func: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Call ``func`` with a fresh connection check before and after; log what it raises.

    A command run in the thread executor uses this thread's connection too, so one it
    broke or left behind is dealt with here.
    """
    close_old_connections()
    try:
        log_failure(func, *args, **kwargs)
    finally:
        close_old_connections()


def log_failure(func: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Call ``func``; log what it raises instead of raising it."""
    name = getattr(func, "__qualname__", func)
    try:
        func(*args, **kwargs)
    except DatabaseError as exc:
        # Fire times are not claimed, so not lost; upkeep is simply tried again later.
        logger.warning("Database unavailable for %s%s: %s", name, args, exc)
    except Exception:
        logger.exception("%s%s failed in the scheduler itself", name, args)
