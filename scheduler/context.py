"""What a command can learn about the run it is executing: ``current_run()``.

The runner sets it around ``call_command`` in whichever executor runs the command: per
thread for the ``thread`` executor (a context variable, so two runs in two pool threads
each see their own), in the child process for the ``process`` executor, in the worker's
child for ``tasks`` and on the terminal for ``schedules run``. Outside a run (a command
called by hand, or ``schedules test``, which records nothing) it is None.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Run


@dataclass(frozen=True)
class RunContext:
    """The run a command executes for: its id, fire time and why it runs."""

    id: int
    scheduled_for: datetime
    reason: str
    schedule: str | None = None
    # The attempt number, for runs that have one (retries); None otherwise.
    attempt: int | None = None

    @classmethod
    def of(cls, run: Run) -> RunContext:
        """Return the context of ``run``."""
        return cls(
            id=run.pk,
            scheduled_for=run.scheduled_for,
            reason=run.reason,
            schedule=run.schedule.name if run.schedule_id and run.schedule else None,
            attempt=getattr(run, "attempt", None),
        )


_current: ContextVar[RunContext | None] = ContextVar("scheduler_current_run", default=None)


def current_run() -> RunContext | None:
    """Return the run the calling command executes for, or None outside a run."""
    return _current.get()


@contextmanager
def running(context: RunContext | None) -> Iterator[None]:
    """Make ``context`` the current run of this thread while the block runs."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)
