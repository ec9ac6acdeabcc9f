"""The catch-up decision: which missed fire time of a schedule, if any, runs now.

A fire time is *missed* when it passed while nothing ran it: after the schedule's latest
claimed fire time (its ``last_claimed``: the ``scheduled_for`` of its latest run that
was not started by hand) or, for a schedule that never ran, after its creation. Missed
fire times coalesce: only the latest runs, and only if the schedule's catch-up is on
and that fire time lies inside its catch-up window. With ``catch_up_runs="each"``, every
missed fire time inside the window runs instead, oldest first, up to
:data:`CATCH_UP_LIMIT` per start: the newest ones; older ones past that cap are left
out, and the decision says how many and which. Fire times before the end of a pause
(``paused_until``) are never missed: a paused schedule does not catch up.
:func:`decide` is pure; it returns what it decided and why, and the caller logs it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .models import CatchUpRuns, Run, Schedule
from .timing import Timing

# The most missed fire times a schedule with catch_up_runs="each" runs per start.
CATCH_UP_LIMIT = 100


class Outcome(enum.Enum):
    RUN = "run"
    NOTHING_MISSED = "nothing missed"
    CATCH_UP_OFF = "catch-up off"
    OUTSIDE_WINDOW = "outside the catch-up window"
    PAUSED = "paused"


@dataclass(frozen=True)
class CatchUp:
    """What catch-up does for one schedule at one moment."""

    outcome: Outcome
    # The latest missed fire time: the one to run when the outcome is RUN.
    missed: datetime | None = None
    # How many fire times were missed; counted only when catch-up is off.
    missed_count: int = 0
    # With catch_up_runs="each": the fire times to run, oldest first.
    each: tuple[datetime, ...] = ()
    # Missed fire times inside the window not run because of CATCH_UP_LIMIT: how many
    # (up to MISSED_COUNT_LIMIT) and the first and last of them.
    left_out: int = 0
    left_out_first: datetime | None = None
    left_out_last: datetime | None = None
    # The first fire time after ``now``, when deciding met it on the way (nothing missed):
    # the planner's next fire time, found without a second walk. Not part of the decision.
    next_fire: datetime | None = field(default=None, compare=False)

    @property
    def fire_time(self) -> datetime | None:
        """Return the fire time to run now, or None."""
        return self.missed if self.outcome is Outcome.RUN else None

    @property
    def fire_times(self) -> list[datetime]:
        """Return the fire times to run now, oldest first."""
        if self.outcome is not Outcome.RUN:
            return []
        return list(self.each) if self.each else [self.missed] if self.missed else []


def decide(
    schedule: Schedule,
    last_claimed: datetime | None,
    now: datetime,
    timing: Timing | None = None,
) -> CatchUp:
    """Decide which missed fire time of ``schedule`` runs at ``now``, if any.

    ``timing`` saves recomputing ``schedule.timing`` when the caller has it already.
    """
    timing = timing or schedule.timing
    since = max(last_claimed, schedule.created_at) if last_claimed else schedule.created_at
    if schedule.paused_until is not None:
        if schedule.paused_until > now:
            return CatchUp(Outcome.PAUSED)
        since = max(since, schedule.paused_until)  # fire times in a pause are not caught up
    # The usual answer, at every start: the first fire time after ``since`` is still to
    # come. One step forward says so, with no search back from ``now``.
    first = timing.next_fire_time(since)
    if first is None or first > now:
        return CatchUp(Outcome.NOTHING_MISSED, next_fire=first if since <= now else None)
    missed = timing.latest_at_or_before(now, since)
    if missed is None:
        return CatchUp(Outcome.NOTHING_MISSED)
    if not schedule.catch_up:
        return CatchUp(Outcome.CATCH_UP_OFF, missed, timing.count_between(since, now))
    window = schedule.catch_up_window
    if window is not None and (now - missed).total_seconds() > window:
        return CatchUp(Outcome.OUTSIDE_WINDOW, missed)
    if schedule.catch_up_runs == CatchUpRuns.EACH:
        return _each(timing, missed, since, now, window)
    return CatchUp(Outcome.RUN, missed)


def _each(
    timing: Timing, latest: datetime, since: datetime, now: datetime, window: int | None
) -> CatchUp:
    """Every missed fire time up to ``latest`` in the window, the newest CATCH_UP_LIMIT."""
    lower = since
    if window is not None:
        lower = max(since, now - timedelta(seconds=window, microseconds=1))
    newest_first = [latest]
    earlier = timing.previous_fire_time(latest)
    while earlier is not None and earlier > lower:
        if len(newest_first) == CATCH_UP_LIMIT:
            first = next(iter(timing.iter_after(lower)))
            return CatchUp(
                Outcome.RUN,
                latest,
                each=tuple(reversed(newest_first)),
                left_out=timing.count_between(lower, earlier),
                left_out_first=first,
                left_out_last=earlier,
            )
        newest_first.append(earlier)
        earlier = timing.previous_fire_time(earlier)
    return CatchUp(Outcome.RUN, latest, each=tuple(reversed(newest_first)))


def last_claimed_fire_times(schedule_ids: list[int]) -> dict[int, datetime]:
    """Return each schedule's latest claimed fire time, manual and backfill runs aside.

    A backfilled past range says nothing about what the daemon missed since.
    """
    return Run.objects.latest_fire_times(schedule_ids)


def fire_time_taken(schedule_id: int, fire_time: datetime) -> bool:
    """Tell whether a run (not a manual one) holds ``fire_time`` of the schedule."""
    return (
        Run.objects.fire_times().filter(schedule_id=schedule_id, scheduled_for=fire_time).exists()
    )
