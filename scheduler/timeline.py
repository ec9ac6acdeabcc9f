"""A picture of the scheduler's last and next day for the admin: runs as bars, fire times as marks.

The SVG is built on the server from plain rows so the page needs no JavaScript and no
chart library, and so that ``render_timeline`` can be tested without a browser or a
database. Every piece of text that reaches the SVG (schedule names, commands) comes from
people editing schedules, so all of it goes through :func:`escape`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from .describe import STATUS_COLOURS, UNKNOWN_COLOUR, status_label
from .models import Run, Schedule, Status
from .timeline_missed import MISSED_LIMIT, missed_fire_times, missed_legend, missed_marks
from .timeline_scale import (
    ZOOMS,
    Band,
    Zoom,
    covers_lower,
    merge_adjacent,
    parse_zoom,
    zoom_for_window,
)
from .timing import TimingError, get_zone

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from .why import Verdict

WINDOW = timedelta(hours=24)
RUN_LIMIT = 5000
FIRE_LIMIT = 200
LANE_LIMIT = 100

WIDTH = 1100
LABEL_WIDTH = 190
RIGHT_PAD = 16
AXIS_HEIGHT = 40
LANE_HEIGHT = 22
BAR_HEIGHT = 14
LEGEND_HEIGHT = 30
MIN_BAR_WIDTH = 3.0
# Runs (of one status) and fire times closer than this many pixels merge into one band, so
# a schedule firing every few seconds is a band in its status colour, not a dark smear.
BAND_GAP = 2.0
FIRE_GAP = 8.0
# Bands are drawn in this order, so a failure among thousands of successes stays on top.
DRAW_ORDER = [
    Status.SKIPPED,
    Status.SUCCEEDED,
    Status.QUEUED,
    Status.RUNNING,
    Status.INTERRUPTED,
    Status.TIMED_OUT,
    Status.FAILED,
]
LABEL_CHARS = 28
FIRE_COLOUR = "#495057"
DELETED_LANE = "(deleted schedules)"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


class RunBar(NamedTuple):
    """A run's row as the timeline view reads it: a tuple, not a model instance."""

    pk: int
    schedule_id: int | None
    command: str
    status: str
    scheduled_for: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None


# RunBar's fields in the order values_list() reads them.
RUN_BAR_COLUMNS = ("id", *RunBar._fields[1:])
# What the drawing reads of a run: the view's rows, or Run objects (tests, other callers).
DrawnRun = RunBar | Run


class _Lane:
    def __init__(self, label: str, href: str | None = None, muted: bool = False) -> None:
        self.label = label
        self.href = href
        self.muted = muted
        self.runs: list[tuple[datetime, datetime, DrawnRun]] = []  # start, end, run
        self.fires: list[datetime] = []
        self.missed: Sequence[Verdict] = ()


def render_timeline(
    schedules: Sequence[Schedule],
    runs: Sequence[DrawnRun],
    fire_times: Mapping[int, Sequence[datetime]],
    *,
    now: datetime,
    past: timedelta = WINDOW,
    future: timedelta = WINDOW,
    missed: Mapping[int, Sequence[Verdict]] | None = None,
) -> str:
    """Return an SVG of one lane per schedule, from ``now - past`` to ``now + future``.

    Runs are bars from their start (or fire time, if they never started) as long as they
    took; a running run reaches ``now``. Runs outside the window are left out, so callers
    may pass a generous query. A run of a schedule missing from ``schedules`` gets a lane
    of its own, named by the schedule's id, and runs whose schedule was deleted share a
    last lane. Colours are the admin's status colours, so a bar here and a badge in the
    run list mean the same thing. ``missed`` (from
    :func:`scheduler.timeline_missed.missed_fire_times`) marks past fire times that did
    not run, by outcome, and adds their legend row.
    """
    start, end = now - past, now + future
    plot_left, plot_right = LABEL_WIDTH, WIDTH - RIGHT_PAD
    span = (end - start).total_seconds()
    scale = (plot_right - plot_left) / span

    def x(moment: datetime) -> float:
        seconds = (moment - start).total_seconds()
        return plot_left + min(max(seconds, 0.0), span) * scale

    lanes: dict[int | None, _Lane] = {}
    for schedule in schedules:
        lanes[schedule.pk] = _Lane(
            schedule.name,
            reverse("admin:scheduler_schedule_change", args=[schedule.pk]),
            muted=not schedule.enabled,
        )
        lanes[schedule.pk].fires = [
            fire for fire in fire_times.get(schedule.pk, ()) if now < fire <= end
        ]
        lanes[schedule.pk].missed = [
            verdict
            for verdict in (missed or {}).get(schedule.pk, ())
            if start <= verdict.fire_time <= now
        ]
    deleted = _Lane(DELETED_LANE, muted=True)
    for run in runs:
        run_start, run_end = _extent(run, now)
        if run_end < start or run_start > end:
            continue
        if run.schedule_id is None:
            lane = deleted
        elif run.schedule_id in lanes:
            lane = lanes[run.schedule_id]
        else:
            lane = lanes[run.schedule_id] = _Lane(
                f"schedule #{run.schedule_id}",
                reverse("admin:scheduler_schedule_change", args=[run.schedule_id]),
            )
        lane.runs.append((run_start, run_end, run))
    ordered = list(lanes.values())
    if deleted.runs:
        ordered.append(deleted)

    lanes_height = max(len(ordered), 1) * LANE_HEIGHT
    height = AXIS_HEIGHT + lanes_height + LEGEND_HEIGHT * (1 if missed is None else 2)
    lanes_bottom = AXIS_HEIGHT + lanes_height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="scheduler-timeline" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'font-family="sans-serif" font-size="11" role="img" '
        f'aria-label="Runs of the last {_hours(past)} and fire times of the next '
        f'{_hours(future)}">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<rect x="{x(now):.1f}" y="{AXIS_HEIGHT}" width="{plot_right - x(now):.1f}" '
        f'height="{lanes_height}" fill="#f1f3f5"/>',
    ]
    for index in range(len(ordered)):
        top = AXIS_HEIGHT + index * LANE_HEIGHT
        if index % 2:
            parts.append(
                f'<rect x="0" y="{top}" width="{plot_left}" height="{LANE_HEIGHT}" fill="#f8f9fa"/>'
            )
        parts.append(
            f'<line x1="0" y1="{top + LANE_HEIGHT}" x2="{plot_right}" '
            f'y2="{top + LANE_HEIGHT}" stroke="#dee2e6"/>'
        )
    parts.extend(_axis(start, end, x, plot_left, plot_right, lanes_bottom))
    if not ordered:
        parts.append(
            f'<text x="{plot_left + 8}" y="{AXIS_HEIGHT + 15}" fill="#6c757d">'
            f"No enabled schedules and no runs in this period.</text>"
        )
    for index, lane in enumerate(ordered):
        top = AXIS_HEIGHT + index * LANE_HEIGHT
        parts.append(_lane_label(lane, top))
        bar_top = top + (LANE_HEIGHT - BAR_HEIGHT) / 2
        parts.extend(_run_marks(lane, now, x, plot_right, bar_top))
        parts.extend(_fire_marks(lane, x, top + LANE_HEIGHT / 2))
        parts.extend(missed_marks(lane.label, lane.missed, x, top + LANE_HEIGHT / 2))
    parts.append(
        f'<line class="now" x1="{x(now):.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x(now):.1f}" '
        f'y2="{lanes_bottom}" stroke="#212529" stroke-width="1.5"><title>now: '
        f"{escape(_local(now))}</title></line>"
    )
    parts.append(
        f'<text x="{x(now):.1f}" y="{AXIS_HEIGHT - 9}" text-anchor="middle" '
        f'font-size="10" font-weight="bold" fill="#212529">now</text>'
    )
    parts.extend(_legend(lanes_bottom + 18))
    if missed is not None:
        parts.extend(missed_legend(lanes_bottom + 18 + LEGEND_HEIGHT))
    parts.append("</svg>")
    return "".join(parts)


def _extent(run: DrawnRun, now: datetime) -> tuple[datetime, datetime]:
    """Where a run's bar starts and ends: a run that never started is a point."""
    if run.started_at is None:
        return run.scheduled_for, run.scheduled_for
    if run.finished_at is not None:
        return run.started_at, max(run.finished_at, run.started_at)
    if run.status == Status.RUNNING:
        return run.started_at, max(now, run.started_at)
    return run.started_at, run.started_at


def _axis(
    start: datetime,
    end: datetime,
    x: Callable[[datetime], float],
    plot_left: float,
    plot_right: float,
    lanes_bottom: float,
) -> list[str]:
    """Ticks in the current timezone, as far apart as the window's zoom level says.

    A day's first tick is labelled with the date, the others with the time.
    """
    zone = timezone.get_current_timezone()
    zoom = zoom_for_window(end - start)
    tick_minutes, label_minutes = zoom.tick_minutes, zoom.label_minutes
    step = timedelta(minutes=min(tick_minutes, 60))
    parts = [
        f'<line x1="{plot_left}" y1="{AXIS_HEIGHT}" x2="{plot_right}" y2="{AXIS_HEIGHT}" '
        f'stroke="#adb5bd"/>'
    ]
    tick = start.astimezone(zone).replace(second=0, microsecond=0)
    tick = tick.replace(minute=tick.minute - tick.minute % int(step.total_seconds() // 60))
    if tick < start:
        tick = (tick.astimezone(UTC) + step).astimezone(zone)
    while tick <= end:
        local = tick.astimezone(zone)
        minute_of_day = local.hour * 60 + local.minute
        at = x(tick)
        if minute_of_day % label_minutes == 0:
            day_format = "%d %b" if label_minutes >= 24 * 60 else "%a %d %b"  # 14 fit
            label = local.strftime(day_format if minute_of_day == 0 else "%H:%M")
            parts.append(
                f'<line x1="{at:.1f}" y1="{AXIS_HEIGHT - 5}" x2="{at:.1f}" y2="{lanes_bottom}" '
                f'stroke="#dee2e6" stroke-dasharray="2,3"/>'
                f'<text class="tick" x="{at:.1f}" y="{AXIS_HEIGHT - 27}" text-anchor="middle" '
                f'fill="#495057">{escape(label)}</text>'
            )
        elif minute_of_day % tick_minutes == 0:
            parts.append(
                f'<line x1="{at:.1f}" y1="{AXIS_HEIGHT - 3}" x2="{at:.1f}" y2="{AXIS_HEIGHT}" '
                f'stroke="#adb5bd"/>'
            )
        tick = (tick.astimezone(UTC) + step).astimezone(zone)
    return parts


def _lane_label(lane: _Lane, top: float) -> str:
    short = lane.label
    if len(short) > LABEL_CHARS:
        short = short[: LABEL_CHARS - 1] + "…"
    style = ' fill="#6c757d" font-style="italic"' if lane.muted else ' fill="#212529"'
    text = (
        f'<text class="lane" x="8" y="{top + LANE_HEIGHT / 2 + 4:.1f}"{style}>'
        f"<title>{escape(lane.label)}</title>{escape(short)}</text>"
    )
    if lane.href:
        return f'<a href="{escape(lane.href)}">{text}</a>'
    return text


def _run_marks(
    lane: _Lane, now: datetime, x: Callable[[datetime], float], plot_right: float, top: float
) -> list[str]:
    """A bar per run, merged into a band where runs of one status lie side by side."""
    marks = []
    for run_start, run_end, run in sorted(lane.runs, key=itemgetter(0)):
        left = min(x(run_start), plot_right - MIN_BAR_WIDTH)
        marks.append((left, max(x(run_end), left + MIN_BAR_WIDTH), run.status, run))
    bands = merge_adjacent(marks, BAND_GAP)
    order: dict[str, int] = {status: index for index, status in enumerate(DRAW_ORDER)}

    def rank(status: str) -> int:
        return order.get(status, len(order))

    over = covers_lower(bands, rank)
    drawn = sorted(zip(bands, over, strict=True), key=lambda pair: rank(pair[0].key))
    half = BAR_HEIGHT / 2
    parts = []
    for band, on_top in drawn:
        band_top, height = (top + half, half) if on_top else (top, BAR_HEIGHT)
        if len(band.items) == 1:
            parts.append(_bar(band, now, band_top, height))
        else:
            parts.append(_run_band(lane, band, now, band_top, height))
    return parts


def _run_band(
    lane: _Lane, band: Band[DrawnRun], now: datetime, top: float, height: float = BAR_HEIGHT
) -> str:
    """One rectangle for many runs of one status, linking to them in the run list."""
    runs = band.items
    first, last = runs[0].scheduled_for, runs[-1].scheduled_for
    query = {"status__exact": band.key}
    if runs[0].schedule_id is None:
        query["schedule__isnull"] = "True"
    else:
        query["schedule__id__exact"] = str(runs[0].schedule_id)
    query["scheduled_for__gte"] = first.isoformat()
    query["scheduled_for__lt"] = (last + timedelta(microseconds=1)).isoformat()
    href = reverse("admin:scheduler_run_changelist") + "?" + urlencode(query)
    colour = STATUS_COLOURS.get(band.key, UNKNOWN_COLOUR)
    summary = (
        f"{len(runs)} runs {status_label(band.key)}, due {_local(first)} to {_local(last)}"
        f" ({lane.label}, click to list them)"
    )
    return (
        f'<a href="{escape(href)}"><rect class="run-band run-{escape(band.key)}" '
        f'data-count="{len(runs)}" x="{band.left:.2f}" y="{top:.1f}" '
        f'width="{band.right - band.left:.2f}" height="{height:g}" fill="{escape(colour)}">'
        f"<title>{escape(summary)}</title></rect></a>"
    )


def _fire_marks(lane: _Lane, x: Callable[[datetime], float], middle: float) -> list[str]:
    """A diamond per fire time, or one outlined band for fire times closer than FIRE_GAP."""
    bands = merge_adjacent(((x(fire), x(fire), "fire", fire) for fire in lane.fires), FIRE_GAP)
    parts = []
    for band in bands:
        if len(band.items) == 1:
            parts.append(_fire_mark(lane.label, band.items[0], band.left, middle))
            continue
        first, last = band.items[0], band.items[-1]
        title = (
            f"{lane.label}: {len(band.items)} next runs, "
            f"{first.strftime(TIME_FORMAT)} to {last.strftime(TIME_FORMAT)}"
        )
        parts.append(
            f'<rect class="fire fire-band" data-count="{len(band.items)}" '
            f'x="{band.left - 4:.1f}" y="{middle - 4:.1f}" '
            f'width="{band.right - band.left + 8:.1f}" '
            f'height="8" rx="4" fill="#ffffff" stroke="{FIRE_COLOUR}" stroke-width="1.2">'
            f"<title>{escape(title)}</title></rect>"
        )
    return parts


def _bar(band: Band[DrawnRun], now: datetime, top: float, height: float = BAR_HEIGHT) -> str:
    """One rectangle for the band's only run, linking to its page."""
    run = band.items[0]
    left, width = band.left, band.right - band.left
    colour = STATUS_COLOURS.get(run.status, UNKNOWN_COLOUR)
    href = reverse("admin:scheduler_run_change", args=[run.pk])
    return (
        f'<a href="{escape(href)}"><rect class="run run-{escape(run.status)}" '
        f'data-run="{run.pk}" x="{left:.2f}" y="{top:.1f}" width="{width:.2f}" '
        f'height="{height:g}" rx="2" fill="{escape(colour)}">'
        f"<title>{escape(_run_summary(run, now))}</title></rect></a>"
    )


def _run_summary(run: DrawnRun, now: datetime) -> str:
    status = status_label(run.status)
    exit_code = "—" if run.exit_code is None else str(run.exit_code)
    if run.started_at is None:
        when = f"not started (fire time {_local(run.scheduled_for)})"
        duration = "—"
    else:
        when = f"started {_local(run.started_at)}"
        if run.finished_at is not None:
            duration = _duration(run.finished_at - run.started_at)
        elif run.status == Status.RUNNING:
            duration = f"{_duration(now - run.started_at)} so far"
        else:
            duration = "—"
    return f"#{run.pk} {run.command} {status}, {when}, duration {duration}, exit code {exit_code}"


def _fire_mark(label: str, fire: datetime, at: float, middle: float) -> str:
    return (
        f'<path class="fire" d="M{at:.1f} {middle - 5:.1f}l4 5l-4 5l-4-5z" '
        f'fill="#ffffff" stroke="{FIRE_COLOUR}" stroke-width="1.2">'
        f"<title>{escape(label)}: next run {escape(fire.strftime(TIME_FORMAT))}</title></path>"
    )


def _legend(top: float) -> list[str]:
    parts = []
    left = 8.0
    for status in Status:
        parts.append(
            f'<rect x="{left:.0f}" y="{top - 9}" width="10" height="10" rx="2" '
            f'fill="{escape(STATUS_COLOURS[status])}"/>'
            f'<text x="{left + 14:.0f}" y="{top}" fill="#495057">{escape(status.label)}</text>'
        )
        left += 22 + 6.5 * len(status.label)
    parts.append(
        f'<path d="M{left + 4:.0f} {top - 9}l4 5l-4 5l-4-5z" fill="#ffffff" '
        f'stroke="{FIRE_COLOUR}" stroke-width="1.2"/>'
        f'<text x="{left + 14:.0f}" y="{top}" fill="#495057">Next fire time</text>'
    )
    return parts


def _local(moment: datetime) -> str:
    return timezone.localtime(moment).strftime(TIME_FORMAT)


def _duration(span: timedelta) -> str:
    seconds = max(span.total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} hours"


def upcoming_fire_times(schedule: Schedule, now: datetime, until: datetime) -> list[datetime]:
    """Fire times of ``schedule`` in ``(now, until]``, at most ``FIRE_LIMIT`` of them.

    The cap keeps a schedule that fires every few seconds from costing thousands of
    marks that would overlap into one black stripe anyway.
    """
    zone = get_zone(schedule.timezone)
    due = takewhile(lambda fire: fire <= until, schedule.timing.iter_after(now))
    return [fire.astimezone(zone) for fire in islice(due, FIRE_LIMIT)]


def timeline_view(request: HttpRequest, model_admin: ModelAdmin[Run]) -> HttpResponse:
    """Admin page with the timeline of the last and next 24 hours, or of another span.

    ``?span=`` zooms to 1h, 6h, 24h (the default) or 7d either side of now, and
    ``?schedule=ID`` shows that schedule alone. Bad values get a 400 naming the choices.

    It is a function rather than a ModelAdmin method so it can live outside admin.py;
    ``RunAdmin.get_urls()`` wires it through ``admin_view`` (the staff login check, CSRF
    and no-cache).

    The page shows run history, so it needs the same ``scheduler.view_run`` permission
    as the run list; without it the request is refused with 403.
    """
    if not request.user.has_perm("scheduler.view_run"):
        raise PermissionDenied
    try:
        zoom = parse_zoom(request.GET.get("span"))
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    only: Schedule | None = None
    if "schedule" in request.GET:
        value = request.GET["schedule"]
        if not value.isdigit():
            return HttpResponseBadRequest(
                f"schedule must be a schedule's id, not {value!r}.", content_type="text/plain"
            )
        only = get_object_or_404(Schedule, pk=int(value))
    now = timezone.now()
    start, end = now - zoom.span, now + zoom.span
    found = Run.objects.for_timeline(start)
    if only is not None:
        found = found.filter(schedule=only)
    # Tuples, not model instances: a full page reads RUN_LIMIT runs, and building as many
    # instances took longer than the query. Each run's schedule is one of the lanes loaded
    # below (the others are dropped), so it is not joined.
    runs = [
        RunBar(*row)
        for row in found.values_list(*RUN_BAR_COLUMNS).order_by("-scheduled_for", "-id")[:RUN_LIMIT]
    ]
    schedule_ids = {run.schedule_id for run in runs if run.schedule_id is not None}
    fields: tuple[str, ...] = ("id", "name", "enabled", "cron", "interval", "timezone")
    fields += (
        "created_at",
        "catch_up",
        "catch_up_window",
        "paused_until",
        "paused_by",
        "pause_reason",
    )
    if only is not None:
        schedules = [only]
        lanes_cut = False
    else:
        # Lanes for schedules that ran first, then the other enabled ones, up to LANE_LIMIT:
        # with thousands of schedules the picture (and its fire-time arithmetic) must stay small.
        schedules = list(Schedule.objects.filter(pk__in=schedule_ids).only(*fields)[:LANE_LIMIT])
        schedules += (
            Schedule.objects.filter(enabled=True)
            .exclude(pk__in=schedule_ids)
            .only(*fields)
            .order_by("name")[: max(LANE_LIMIT - len(schedules), 0)]
        )
        lanes_cut = Schedule.objects.filter(Q(enabled=True) | Q(pk__in=schedule_ids)).count() > len(
            schedules
        )
    shown = {schedule.pk for schedule in schedules}
    runs = [run for run in runs if run.schedule_id is None or run.schedule_id in shown]
    fire_times: dict[int, list[datetime]] = {}
    for schedule in schedules:
        if not schedule.enabled:
            continue
        try:
            fire_times[schedule.pk] = upcoming_fire_times(schedule, now, end)
        except TimingError:
            continue
    missed = missed_fire_times(schedules, start, now)
    svg = render_timeline(
        schedules, runs, fire_times, now=now, past=zoom.span, future=zoom.span, missed=missed
    )
    of = f" of {only.name}" if only is not None else ""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Runs{of}: last {zoom.label} and next {zoom.label}",
        "opts": Run._meta,
        "svg": mark_safe(svg),  # render_timeline escapes every user-provided string
        "run_count": len(runs),
        "run_limit": RUN_LIMIT if len(runs) >= RUN_LIMIT else None,
        "fire_limit": FIRE_LIMIT,
        "missed_limit": MISSED_LIMIT,
        "lane_limit": LANE_LIMIT if lanes_cut else None,
        "timezone_name": timezone.get_current_timezone_name(),
        "zooms": _zoom_links(zoom, only),
        "schedule": only,
        "all_schedules_url": f"?{urlencode({'span': zoom.key})}",
        "runs_url": reverse("admin:scheduler_run_changelist")
        + (f"?{urlencode({'schedule__id__exact': only.pk})}" if only is not None else ""),
    }
    return render(request, "admin/scheduler/timeline.html", context)


def _zoom_links(current: Zoom, only: Schedule | None) -> list[dict[str, object]]:
    """The zoom levels as links that keep the schedule shown."""
    links: list[dict[str, object]] = []
    for zoom in ZOOMS:
        query = {"span": zoom.key}
        if only is not None:
            query["schedule"] = str(only.pk)
        links.append({"key": zoom.key, "url": f"?{urlencode(query)}", "selected": zoom == current})
    return links


def timeline_url(schedule: Schedule, span: str | None = None) -> str:
    """The timeline page showing ``schedule`` alone."""
    query = {"schedule": str(schedule.pk)}
    if span:
        query["span"] = span
    return reverse("admin:scheduler_run_timeline") + "?" + urlencode(query)
