"""An APScheduler trigger that asks :mod:`scheduler.timing` for fire times.

APScheduler keeps hosting the jobs and persisting them in the job store; the arithmetic
stays the project's own so that the daemon fires exactly when ``Schedule.next_fire_times``
says it will (APScheduler's cron differs from Debian cron on day-of-week numbering, the
day-of-month/day-of-week rule and daylight-saving changes).
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.triggers.base import BaseTrigger

from .timing import Timing

logger = logging.getLogger("scheduler.daemon")


class TimingTrigger(BaseTrigger):
    def __init__(self, timing: Timing) -> None:
        self.timing = timing

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # After a fire, the next one follows it even if that is already past: APScheduler
        # then coalesces the late ones into one run instead of dropping them.
        try:
            return self.timing.next_fire_time(previous_fire_time or now)
        except (ArithmeticError, ValueError) as exc:
            # Raised here, it would end APScheduler's thread and all scheduling with it;
            # no next fire time removes this job alone.
            logger.error("%s has no next fire time: %s", self, exc)
            return None

    def __getstate__(self) -> dict:
        return {"version": 1, "timing": self.timing}

    def __setstate__(self, state: dict) -> None:
        self.timing = state["timing"]

    def __str__(self) -> str:
        if self.timing.cron:
            return f"cron[{self.timing.cron} {self.timing.timezone}]"
        return f"interval[{self.timing.interval}s]"
