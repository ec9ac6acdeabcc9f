"""Execute a claimed run's command and record how it ended.

The one path from a claimed ``Run`` to a finished one, shared by the daemon, the task
workers and the command line, so that jitter, defence-in-depth checks, live output,
recording through database outages and logging are the same wherever a command runs.
(:mod:`scheduler.executor` runs a command; this module runs a ``Run``.) Claiming a fire
time and dispatching it here or to the task backend is :mod:`scheduler.runner`'s job.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction

from .commands import CommandNotAllowed, check_allowed
from .conf import conf
from .context import RunContext
from .executor import ExecutionResult, OutputCallback, execute
from .models import Executor, Run, Status
from .output import CappedBuffer
from .owners import Owner
from .pings import ping
from .retries import plan_retry
from .signals import run_finished

# The logger keeps the name projects configure; this module was split out of the runner.
logger = logging.getLogger("scheduler.runner")

T = TypeVar("T")

# How long a finished run's result is retried while the database is unreachable; a
# daemon keeps it after that (see ``record_unrecorded``).
PERSIST_RETRY_FOR = 600.0

# Runs this process is executing, and results it could not write yet: what a daemon
# still holds, so that it can end the rest of its ``running`` runs (see ``holding``).
_held_lock = threading.Lock()
_executing: set[int] = set()
_ended = 0
_unrecorded: dict[int, tuple[Run, ExecutionResult]] = {}


def ended_count() -> int:
    """Return how many runs this process has ended (pruning waits for some, or time)."""
    with _held_lock:
        return _ended


def holding() -> set[int]:
    """Ids of the runs this process is executing or still has a result for."""
    with _held_lock:
        return _executing | set(_unrecorded)


def record_unrecorded() -> list[Run]:
    """Write results kept back by a database outage longer than ``PERSIST_RETRY_FOR``.

    Returns the runs this call ended, for the caller to notify about; a result another
    process overtook (it ended the run meanwhile) is dropped, and one the database still
    refuses is kept for next time.
    """
    with _held_lock:
        pending = list(_unrecorded.values())
    recorded = []
    for run, result in pending:
        try:
            ended = run.finish(result)
        except DatabaseError:
            break
        with _held_lock:
            _unrecorded.pop(run.pk, None)
        if ended:
            logger.warning("Run %s of %s recorded late: %s", run.pk, run.schedule, run.status)
            recorded.append(run)
    return recorded


def run_queued(
    run_id: int,
    *,
    owner: Owner | None = None,
    stop: threading.Event | None = None,
    stopping: threading.Event | None = None,
) -> Run | None:
    """Start a queued run ("run now" in admin, a task in a worker) unless another process did."""
    run = Run.objects.select_related("schedule").filter(pk=run_id).first()
    if run is None or not run.start(owner=owner or Owner.this_process()):
        return None
    if run.status == Status.SKIPPED:
        return run
    return execute_run(run, stop=stop, stopping=stopping)


def execute_run(
    run: Run,
    *,
    stop: threading.Event | None = None,
    stopping: threading.Event | None = None,
    echo: OutputCallback | None = None,
) -> Run:
    """Run a claimed ``Run``'s command and record how it ended.

    ``echo`` also receives the output as it arrives (the command line's ``run``). Should
    the scheduler's own code fail on the way, the run is still ended as ``failed`` with
    the traceback: a run left ``running`` by a live daemon would never be resolved, and
    would make an ``overlap="skip"`` schedule skip for ever.

    ``stopping`` is a daemon's "no new command starts": set before the command started
    (during the jitter delay, say), the run is released (``Run.release``), so the fire
    time is not lost but caught up at the next start. Without it, ``stop`` in that
    phase ends the run ``interrupted`` (a terminal's Ctrl-C).
    """
    with _held_lock:
        _executing.add(run.pk)
    try:
        return _execute_run(run, stop=stop, stopping=stopping, echo=echo)
    except (KeyboardInterrupt, SystemExit):
        # A worker told to stop at once (its second SIGTERM) exits through here.
        logger.warning("Run %s of %s stopped: this process is exiting", run.pk, run.schedule)
        message = "[scheduler] Interrupted: the process running it was told to exit."
        _end_broken(run, message, Status.INTERRUPTED)
        raise
    except BaseException:
        logger.exception("Run %s of %s broke in the scheduler", run.pk, run.schedule)
        message = f"[scheduler] The scheduler failed while running this:\n{traceback.format_exc()}"
        _end_broken(run, message, Status.FAILED)
        raise
    finally:
        with _held_lock:
            _executing.discard(run.pk)


def _end_broken(run: Run, message: str, status: str) -> None:
    try:
        if run.fail(message, status=status):
            finished(run)
    except DatabaseError:
        pass


def _execute_run(
    run: Run,
    *,
    stop: threading.Event | None,
    stopping: threading.Event | None,
    echo: OutputCallback | None,
) -> Run:
    schedule = run.schedule
    ping_base = schedule.ping_url if schedule else ""
    try:
        check_allowed(run.command)
    except CommandNotAllowed as exc:
        logger.error("Run %s of %s refused: %s", run.pk, schedule, exc)
        message = f"Not executed: {exc}"
        end(run, lambda: run.fail(message))
        return run
    hold = stopping or stop
    if run.jitter:
        delay = random.uniform(0, run.jitter)
        logger.debug("Run %s of %s waits %.1f s of jitter", run.pk, schedule, delay)
        (hold or threading.Event()).wait(delay)
    if hold is not None and hold.is_set():
        if stopping is not None:
            _release(run)
        else:
            message = "Not started: told to stop before the command started."
            end(run, lambda: run.fail(message, status=Status.INTERRUPTED))
        return run
    if run.jitter and not persist(run.record_start, run):
        logger.warning(
            "Run %s of %s was ended by another process before it started", run.pk, schedule
        )
        return run
    logger.info(
        "Run %s of %s started: %s (%s, %s)",
        run.pk,
        schedule,
        " ".join([run.command, *map(str, run.args)]),
        run.reason,
        run.executor,
    )
    ping(ping_base, "start")
    live = LiveOutput(run) if run.executor != Executor.THREAD else None
    timeout: float | None = run.timeout
    if run.executor == Executor.TASKS:
        # Nobody else can stop a worker's command, so it never runs unbounded.
        timeout = timeout or conf.TASKS_MAX_AGE
    try:
        result = execute(
            run.command,
            run.args,
            # A worker runs a ``tasks`` run in a child process, like the process executor.
            Executor.THREAD if run.executor == Executor.THREAD else Executor.PROCESS,
            timeout=timeout,
            stop=stop if run.executor == Executor.THREAD else OwnedRunStop(run, stop),
            on_output=_fan_out(live, echo),
            context=RunContext.of(run),
        )
    except Exception:
        logger.exception("Run %s of %s could not be executed", run.pk, schedule)
        result = ExecutionResult(Status.FAILED, None, "", traceback.format_exc())
    try:
        recorded = persist(lambda: _finishes.finish(run, result), run)
    except DatabaseError:
        logger.error(
            "Run %s of %s %s but cannot be recorded yet; kept until the database is back",
            run.pk,
            schedule,
            result.status,
        )
        with _held_lock:
            _unrecorded[run.pk] = (run, result)
        return run
    if not recorded:
        logger.warning(
            "Run %s of %s was already ended as %s by another process; its command's result "
            "(%s) is not recorded",
            run.pk,
            schedule,
            run.status,
            result.status,
        )
        return run
    logger.info(
        "Run %s of %s %s in %.2f s (exit code %s)",
        run.pk,
        schedule,
        run.status,
        (run.duration or timedelta()).total_seconds(),
        run.exit_code,
    )
    if plan_retry(run) is None:
        ping(ping_base, "success" if run.status == Status.SUCCEEDED else "failure", run.exit_code)
    finished(run)
    return run


FinishMany = Callable[[list[tuple[Run, ExecutionResult]]], list[bool]]
"""Record results, saying for each whether this call ended its run (``Run.finish_many``)."""


class GroupFinish:
    """Record the results of runs that end together in one write (a group commit).

    Each thread still waits until its own run is recorded, so what follows (the log
    line, retries, ``run_finished``) is unchanged. Whichever thread gets to write takes
    every result queued meanwhile: a burst of runs ending at once costs a few
    transactions instead of one each, and a run ending alone costs what it did.
    """

    def __init__(self, write: FinishMany = Run.finish_many) -> None:
        self._write_many = write
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue: list[_Ending] = []

    def finish(self, run: Run, result: ExecutionResult) -> bool:
        """Record ``result`` as ``run.finish`` does, possibly together with others'."""
        if transaction.get_connection().in_atomic_block:
            # Grouped, it would be committed or rolled back with another thread's work.
            return run.finish(result)
        ending = _Ending(run, result)
        with self._queue_lock:
            self._queue.append(ending)
        with self._write_lock:
            if not ending.written:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._write(batch, ending)
        if ending.error is not None:
            raise ending.error
        if not ending.ended:
            run.refresh_from_db()  # as finish() does: show how the other process ended it
        return ending.ended

    def _write(self, batch: list[_Ending], own: _Ending) -> None:
        """Write the batch together, or run by run should that fail.

        Run by run, an error reaches only the thread whose run it concerns (a value its
        column cannot hold, say), and a passing one (a deadlock) is over. Should a run's
        own write meet an error of the database itself (unreachable, locked), the runs
        after it get that error at once rather than each waiting for it in turn.
        """
        try:
            if len(batch) > 1:
                try:
                    ended = self._write_many([(ending.run, ending.result) for ending in batch])
                except Exception:
                    logger.debug("%d results not written together; writing each", len(batch))
                else:
                    for ending, mine in zip(batch, ended, strict=True):
                        ending.ended, ending.written = mine, True
            down: Exception | None = None
            for ending in batch:
                if ending.written:
                    continue
                if down is not None:
                    ending.error = down
                else:
                    try:
                        ending.ended = self._write_many([(ending.run, ending.result)])[0]
                    except (OperationalError, InterfaceError) as exc:
                        ending.error = down = exc
                    except Exception as exc:
                        ending.error = exc
                ending.written = True
        finally:
            # This thread is being stopped (SystemExit): the next writer takes the others'
            # results; its own is ended by its thread on the way out, as any stopped run.
            unwritten = [ending for ending in batch if not ending.written and ending is not own]
            if unwritten:
                with self._queue_lock:
                    self._queue[:0] = unwritten


class _Ending:
    """A result waiting in :class:`GroupFinish`, and how its write went."""

    def __init__(self, run: Run, result: ExecutionResult) -> None:
        self.run, self.result = run, result
        self.written = False  # set under GroupFinish._write_lock
        self.ended = False
        self.error: Exception | None = None


_finishes = GroupFinish()


def _release(run: Run) -> None:
    """Give back a run taken but not started, so the fire time is not lost (see Run.release)."""
    try:
        released = run.release()
    except DatabaseError as exc:
        logger.warning("Run %s of %s could not be released: %s", run.pk, run.schedule, exc)
        return
    if released:
        logger.info(
            "Run %s of %s not started: the scheduler is stopping; %s runs later",
            run.pk,
            run.schedule,
            run.scheduled_for,
        )


class OwnedRunStop:
    """The ``stop`` a process-executor run is given: set when ``stop`` is, or once
    another process has ended the run.

    A daemon frozen (SIGSTOP, a paused VM) past ``HEARTBEAT_TIMEOUT`` finds its runs
    ended ``interrupted`` by a live daemon when it wakes; their commands must not go on
    beside a second run. Asked every tick by the executor, it looks in the database
    every ``HEARTBEAT_INTERVAL``.
    """

    def __init__(self, run: Run, stop: threading.Event | None) -> None:
        self.run = run
        self.stop = stop
        self.checked_at = time.monotonic()
        self.ended_elsewhere = False

    def is_set(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            return True
        if not self.ended_elsewhere and (
            time.monotonic() - self.checked_at >= conf.HEARTBEAT_INTERVAL
        ):
            self.checked_at = time.monotonic()
            try:
                self.ended_elsewhere = not self.run.still_owned()
            except DatabaseError:
                return False  # not known to be ended: keep going
            if self.ended_elsewhere:
                logger.warning(
                    "Run %s of %s was ended by another process; stopping its command",
                    self.run.pk,
                    self.run.schedule,
                )
        return self.ended_elsewhere


def end(run: Run, write: Callable[[], bool]) -> None:
    """Record that a run ended without its command's result; notify only if this call did.

    ``write`` is one of the run's conditional updates (``fail``), which tell
    whether another process had ended the run first.
    """
    if persist(write, run):
        finished(run)


def finished(run: Run) -> None:
    """Tell the project a run ended; a receiver's error never affects the daemon."""
    global _ended
    with _held_lock:
        _ended += 1
    for receiver, response in run_finished.send_robust(sender=Run, run=run):
        if isinstance(response, Exception):
            logger.error("run_finished receiver %r failed: %r", receiver, response)


class LiveOutput:
    """Keeps a running run's output so far in the database for admin's live view.

    Written at most every ``OUTPUT_FLUSH_INTERVAL`` seconds, and only when there is new
    output (the executor calls with "" while the command is quiet, so the last lines
    before a long silence are stored too); a failed write is only skipped, the final
    result is recorded regardless.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.buffers = {
            "stdout": CappedBuffer(conf.OUTPUT_LIMIT),
            "stderr": CappedBuffer(conf.OUTPUT_LIMIT),
        }
        self.flushed_at = time.monotonic()
        self.unsaved = False

    def __call__(self, stream: str, text: str) -> None:
        if text:
            self.buffers[stream].write(text)
            self.unsaved = True
        if self.unsaved and time.monotonic() - self.flushed_at >= conf.OUTPUT_FLUSH_INTERVAL:
            self.flushed_at = time.monotonic()
            self.unsaved = False
            try:
                self.run.record_output(
                    self.buffers["stdout"].getvalue(), self.buffers["stderr"].getvalue()
                )
            except DatabaseError as exc:
                logger.debug("Output of run %s not stored yet: %s", self.run.pk, exc)


def _fan_out(*callbacks: OutputCallback | None) -> OutputCallback | None:
    present = [callback for callback in callbacks if callback is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def both(stream: str, text: str) -> None:
        for callback in present:
            callback(stream, text)

    return both


def persist(write: Callable[[], T], run: Run) -> T:
    """Write a run's state, waiting out a database outage rather than losing the result.

    The command has already run; dropping its result because the database restarted
    would leave the run ``running`` until a liveness check calls it interrupted.
    """
    deadline = time.monotonic() + PERSIST_RETRY_FOR
    delay = 0.5
    warned = False
    while True:
        try:
            written = write()
            if warned:
                logger.warning("Run %s recorded after the database came back", run.pk)
            return written
        except DatabaseError as exc:
            if time.monotonic() + delay > deadline:
                raise
            if not warned:
                logger.warning(
                    "Run %s could not be recorded (%s); retrying until the database is back",
                    run.pk,
                    exc,
                )
                warned = True
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            # A connection broken by the outage is not always flagged as unusable, so
            # drop this thread's connections outright; the next write opens a new one.
            connections.close_all()
