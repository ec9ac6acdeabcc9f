"""The catch-up decision: which missed fire time of a schedule, if any, runs now.

A fire time is *missed* when it passed while nothing ran it: after the schedule's latest
claimed fire time (its ``last_claimed``: the ``scheduled_for`` of its latest run that
was not started by hand) or, for a schedule that never ran, after its creation. Missed
fire times coalesce: only the latest runs, and only if the schedule's catch-up is on
and that fire time lies inside its catch-up window. :func:`decide` is pure; it returns
what it decided and why, and the caller logs it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from .models import Reason, Run, Schedule
from .timing import Timing


class Outcome(enum.Enum):
    RUN = "run"
    NOTHING_MISSED = "nothing missed"
    CATCH_UP_OFF = "catch-up off"
    OUTSIDE_WINDOW = "outside the catch-up window"


@dataclass(frozen=True)
class CatchUp:
    """What catch-up does for one schedule at one moment."""

    outcome: Outcome
    # The latest missed fire time: the one to run when the outcome is RUN.
    missed: datetime | None = None
    # How many fire times were missed; counted only when catch-up is off.
    missed_count: int = 0

    @property
    def fire_time(self) -> datetime | None:
        """Return the fire time to run now, or None."""
        return self.missed if self.outcome is Outcome.RUN else None


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
    missed = timing.latest_at_or_before(now, since)
    if missed is None:
        return CatchUp(Outcome.NOTHING_MISSED)
    if not schedule.catch_up:
        return CatchUp(Outcome.CATCH_UP_OFF, missed, timing.count_between(since, now))
    window = schedule.catch_up_window
    if window is not None and (now - missed).total_seconds() > window:
        return CatchUp(Outcome.OUTSIDE_WINDOW, missed)
    return CatchUp(Outcome.RUN, missed)


def last_claimed_fire_times(schedule_ids: list[int]) -> dict[int, datetime]:
    """Return each schedule's latest claimed fire time, manual runs aside (one query).

    Backfill runs are aside too: a backfilled past range says nothing about what the
    daemon missed since.
    """
    rows = (
        Run.objects.filter(schedule_id__in=schedule_ids)
        .exclude(reason__in=[Reason.MANUAL, Reason.BACKFILL])
        .values("schedule_id")
        .annotate(latest=Max("scheduled_for"))
    )
    return {row["schedule_id"]: row["latest"] for row in rows}
