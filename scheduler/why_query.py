"""Read what :func:`scheduler.why.explain` needs about one schedule from the database."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from .conf import conf
from .history import snapshot
from .models import Heartbeat, Schedule, ScheduleChange
from .why import ChangeFact, Facts, RunFact, Span, Verdict, explain

# At most this many fire times are explained at once (an interval of 1 s over a day).
MAX_FIRE_TIMES = 100_000


def fire_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Return the schedule's nominal fire times in ``[start, end]``."""
    fires: list[datetime] = []
    for fire in schedule.timing.iter_after(start - timedelta(microseconds=1)):
        if fire > end or len(fires) >= MAX_FIRE_TIMES:
            break
        fires.append(fire)
    return fires


def facts_for(schedule: Schedule, start: datetime, end: datetime, now: datetime) -> Facts:
    """Return the runs, edits and daemon up-time that explain ``[start, end]``."""
    runs = schedule.runs.filter(
        Q(scheduled_for__gte=start)
        | Q(started_at__lte=end, finished_at__gte=start)
        | Q(started_at__lte=end, finished_at__isnull=True)
    ).values_list(
        "id", "scheduled_for", "reason", "status", "created_at", "started_at", "finished_at"
    )
    changes = ScheduleChange.objects.filter(schedule=schedule).values_list(
        "changed_at", "changed_by", "source", "changes"
    )
    stale_before = now - timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
    spans = []
    for started, last_beat, stopped in Heartbeat.objects.filter(kind="daemon").values_list(
        "started_at", "last_beat", "stopped_at"
    ):
        ended = stopped or (last_beat if last_beat < stale_before else None)
        spans.append(Span(started, ended))
    current = snapshot(schedule)
    current["paused_until"] = schedule.paused_until
    return Facts(
        created_at=schedule.created_at,
        catch_up=schedule.catch_up,
        catch_up_window=schedule.catch_up_window,
        current=current,
        runs=[RunFact(*row) for row in runs],
        changes=[ChangeFact(*row) for row in changes],
        daemons=spans,
    )


def why(schedule: Schedule, start: datetime, end: datetime, now: datetime) -> list[Verdict]:
    """Return the outcome of each fire time of ``schedule`` in ``[start, min(end, now)]``."""
    end = min(end, now)
    return explain(fire_times(schedule, start, end), facts_for(schedule, start, end, now), now)
