"""Fire times on the timeline's past side that have no run, marked by what ``why`` says.

:func:`missed_fire_times` asks :func:`scheduler.why.explain` about the latest fire times
of each schedule shown, reading the facts for all of them in three queries, and keeps
those with no run of their own. :func:`missed_marks` draws them: a dot per fire time in
its outcome's colour, merged into a band where they lie too close to tell apart, with the
outcome in the tooltip. :func:`missed_legend` explains the colours.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import reduce
from operator import or_

from django.db.models import Q
from django.utils import timezone
from django.utils.html import escape

from .conf import conf
from .models import Heartbeat, Run, Schedule, ScheduleChange
from .timeline_scale import merge_adjacent
from .timing import TimingError
from .why import ChangeFact, Facts, Outcome, RunFact, Span, Verdict, explain

# At most this many fire times per schedule are explained, the latest ones: a schedule
# firing every second would otherwise cost a day of verdicts on each page view.
MISSED_LIMIT = 300
# Marks closer than this many pixels (of one outcome) merge into one band.
MISSED_GAP = 3.0
MISSED_RADIUS = 3.5
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"

# The fields ``explain`` reads from the schedule as it is now.
CURRENT_FIELDS = ("enabled", "paused_until", "paused_by", "pause_reason")

# What a missed fire time looks like, by outcome, in legend order.
OUTCOME_COLOURS: dict[Outcome, str] = {
    Outcome.PAUSED: "#f59f00",
    Outcome.DISABLED: "#495057",
    Outcome.CAUGHT_UP: "#74c0fc",
    Outcome.NOT_CAUGHT_UP: "#e64980",
    Outcome.NO_SCHEDULER: "#212529",
    Outcome.BEFORE_CREATED: "#e9ecef",
    Outcome.UNEXPLAINED: "#9c6644",
}
# Outcomes that are no miss: the fire time has its run, or may still get one.
NOT_MISSED = frozenset({Outcome.RAN, Outcome.SKIPPED, Outcome.DUE})


def missed_fire_times(
    schedules: Sequence[Schedule],
    start: datetime,
    now: datetime,
    limit: int = MISSED_LIMIT,
) -> dict[int, list[Verdict]]:
    """Return, per schedule, the verdicts of its fire times in ``[start, now]`` with no run.

    Only the latest ``limit`` fire times of each schedule are looked at. Schedules whose
    timing cannot be computed are left out.
    """
    fires: dict[int, list[datetime]] = {}
    for schedule in schedules:
        try:
            fires[schedule.pk] = _latest_fire_times(schedule, start, now, limit)
        except TimingError:
            continue
    fires = {pk: times for pk, times in fires.items() if times}
    if not fires:
        return {}
    runs: dict[int, list[RunFact]] = defaultdict(list)
    window = reduce(
        or_, (Q(schedule_id=pk, scheduled_for__gte=times[0]) for pk, times in fires.items())
    )
    for row in (
        Run.objects.filter(window)
        .order_by()
        .values_list(
            "schedule_id",
            "id",
            "scheduled_for",
            "reason",
            "status",
            "created_at",
            "started_at",
            "finished_at",
        )
    ):
        runs[row[0]].append(RunFact(*row[1:]))
    changes: dict[int, list[ChangeFact]] = defaultdict(list)
    for change in (
        ScheduleChange.objects.filter(schedule_id__in=fires)
        .order_by("changed_at", "id")
        .values_list("schedule_id", "changed_at", "changed_by", "source", "changes")
    ):
        changes[change[0]].append(ChangeFact(*change[1:]))
    daemons = _daemon_spans(now)
    missed: dict[int, list[Verdict]] = {}
    for schedule in schedules:
        if schedule.pk not in fires:
            continue
        facts = Facts(
            created_at=schedule.created_at,
            catch_up=schedule.catch_up,
            catch_up_window=schedule.catch_up_window,
            current={name: getattr(schedule, name) for name in CURRENT_FIELDS},
            runs=runs[schedule.pk],
            changes=changes[schedule.pk],
            daemons=daemons,
        )
        own = {run.scheduled_for for run in runs[schedule.pk] if run.reason != "manual"}
        missed[schedule.pk] = [
            verdict
            for verdict in explain(fires[schedule.pk], facts, now)
            if verdict.outcome not in NOT_MISSED and verdict.fire_time not in own
        ]
    return missed


def _latest_fire_times(
    schedule: Schedule, start: datetime, now: datetime, limit: int
) -> list[datetime]:
    """The schedule's last ``limit`` fire times in ``[start, now]``, oldest first.

    A schedule fires at most once a second, so the search starts no earlier than
    ``limit`` seconds before now, then widens until it finds enough or reaches ``start``.
    """
    reach = timedelta(seconds=limit)
    while True:
        since = max(start, now - reach)
        found = list(_iter_between(schedule, since, now))
        if len(found) >= limit or since == start:
            return found[-limit:]
        reach *= 8


def _iter_between(schedule: Schedule, since: datetime, until: datetime) -> Iterable[datetime]:
    for fire in schedule.timing.iter_after(since - timedelta(microseconds=1)):
        if fire > until:
            return
        yield fire


def _daemon_spans(now: datetime) -> list[Span]:
    """The daemons' up-time, as :func:`scheduler.why_query.facts_for` reads it."""
    stale_before = now - timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
    spans = []
    for started, last_beat, stopped in Heartbeat.objects.filter(kind="daemon").values_list(
        "started_at", "last_beat", "stopped_at"
    ):
        ended = stopped or (last_beat if last_beat < stale_before else None)
        spans.append(Span(started, ended))
    return spans


def missed_marks(
    label: str, verdicts: Sequence[Verdict], x: Callable[[datetime], float], middle: float
) -> list[str]:
    """A dot per missed fire time in its outcome's colour, a band where they crowd."""
    bands = merge_adjacent(
        ((x(v.fire_time), x(v.fire_time), v.outcome.value, v) for v in verdicts), MISSED_GAP
    )
    parts = []
    for band in bands:
        first, last = band.items[0], band.items[-1]
        colour = OUTCOME_COLOURS.get(first.outcome, "#adb5bd")
        css = "missed missed-" + first.outcome.name.lower().replace("_", "-")
        if len(band.items) == 1:
            title = (
                f"{label}: {_local(first.fire_time)} did not run: "
                f"{first.outcome.value} ({first.detail})"
            )
        else:
            title = (
                f"{label}: {len(band.items)} fire times did not run, "
                f"{_local(first.fire_time)} to {_local(last.fire_time)}: {first.outcome.value}"
                f" ({last.detail})"
            )
        parts.append(
            f'<rect class="{css}" data-outcome="{escape(first.outcome.value)}" '
            f'data-count="{len(band.items)}" x="{band.left - MISSED_RADIUS:.2f}" '
            f'y="{middle - MISSED_RADIUS:.1f}" '
            f'width="{band.right - band.left + 2 * MISSED_RADIUS:.2f}" '
            f'height="{2 * MISSED_RADIUS:g}" rx="{MISSED_RADIUS:g}" fill="{colour}" '
            f'stroke="#ffffff" stroke-width="1"><title>{escape(title)}</title></rect>'
        )
    return parts


def missed_legend(top: float) -> list[str]:
    """One legend row: "Did not run:" then each outcome's dot and name."""
    parts = [f'<text x="8" y="{top}" fill="#495057">Fire time did not run:</text>']
    left = 140.0
    for outcome, colour in OUTCOME_COLOURS.items():
        parts.append(
            f'<rect class="legend-missed" x="{left:.0f}" y="{top - 8}" width="8" height="8" '
            f'rx="4" fill="{colour}" stroke="#adb5bd" stroke-width="0.5"/>'
            f'<text x="{left + 12:.0f}" y="{top}" fill="#495057">{escape(outcome.value)}</text>'
        )
        left += 26 + 6.0 * len(outcome.value)
    return parts


def _local(moment: datetime) -> str:
    return timezone.localtime(moment).strftime(TIME_FORMAT)
