from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.core.handlers.exception import convert_exception_to_response
from django.db.models.signals import post_init
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from scheduler.admin import STATUS_COLOURS
from scheduler.history import changed_by
from scheduler.models import Heartbeat, Reason, Run, Schedule, ScheduleChange, Status
from scheduler.timeline import (
    AXIS_HEIGHT,
    BAR_HEIGHT,
    FIRE_LIMIT,
    LABEL_WIDTH,
    LANE_HEIGHT,
    MIN_BAR_WIDTH,
    RIGHT_PAD,
    WIDTH,
    render_timeline,
    timeline_view,
    upcoming_fire_times,
)
from scheduler.timeline_missed import (
    MISSED_LIMIT,
    MISSED_RADIUS,
    OUTCOME_COLOURS,
    missed_fire_times,
)
from scheduler.why import Outcome

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def make_run(schedule: Schedule | None, status: str, **fields) -> Run:
    fields.setdefault("scheduled_for", fields.get("started_at") or NOW - timedelta(hours=1))
    return Run.objects.create(
        schedule=schedule,
        command=fields.pop("command", schedule.command if schedule else "say"),
        reason=Reason.SCHEDULED,
        status=status,
        **fields,
    )


def bar(svg: str, run: Run) -> dict[str, str]:
    """The attributes of the bar drawn for ``run``."""
    match = re.search(rf'<rect [^>]*data-run="{run.pk}"[^>]*>', svg)
    assert match, f"no bar for run #{run.pk}"
    return dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(0)))


def x_of(moment: datetime) -> float:
    """Where ``moment`` lies on the default 48-hour axis around NOW."""
    seconds = (moment - (NOW - timedelta(hours=24))).total_seconds()
    return LABEL_WIDTH + seconds * (WIDTH - LABEL_WIDTH - RIGHT_PAD) / (48 * 3600)


def lane_labels(svg: str) -> list[str]:
    return re.findall(r'<text class="lane"[^>]*><title>([^<]*)</title>', svg)


def test_each_schedule_gets_a_lane_labelled_with_its_name(make_schedule):
    first = make_schedule(name="Expire tokens")
    second = make_schedule(name="Nightly batch", enabled=False)
    svg = render_timeline([first, second], [], {}, now=NOW)
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert lane_labels(svg) == ["Expire tokens", "Nightly batch"]
    assert reverse("admin:scheduler_schedule_change", args=[first.pk]) in svg


def test_each_run_is_a_bar_in_its_status_colour_linking_to_its_run_page(make_schedule):
    schedule = make_schedule()
    runs = [
        make_run(
            schedule,
            status,
            scheduled_for=NOW - timedelta(hours=hours),
            started_at=NOW - timedelta(hours=hours),
            finished_at=NOW - timedelta(hours=hours) + timedelta(seconds=30),
            exit_code=exit_code,
        )
        for hours, status, exit_code in [(3, Status.SUCCEEDED, 0), (2, Status.FAILED, 3)]
    ]
    svg = render_timeline([schedule], runs, {}, now=NOW)
    for run in runs:
        assert bar(svg, run)["fill"] == STATUS_COLOURS[run.status]
        link = reverse("admin:scheduler_run_change", args=[run.pk])
        assert re.search(rf'<a href="{link}"><rect [^>]*data-run="{run.pk}"', svg)
    assert f"<title>#{runs[1].pk} say Failed, started 2026-11-24 10:00:00 UTC" in svg
    assert "duration 30.0 s, exit code 3</title>" in svg


def test_bar_width_is_proportional_to_the_run_duration(make_schedule):
    schedule = make_schedule()
    short, long = (
        make_run(
            schedule,
            Status.SUCCEEDED,
            started_at=NOW - timedelta(hours=hours),
            finished_at=NOW - timedelta(hours=hours) + timedelta(minutes=minutes),
        )
        for hours, minutes in [(6, 30), (4, 120)]
    )
    svg = render_timeline([schedule], [short, long], {}, now=NOW)
    short_width, long_width = float(bar(svg, short)["width"]), float(bar(svg, long)["width"])
    assert long_width / short_width == pytest.approx(4, rel=0.01)
    assert float(bar(svg, short)["x"]) == pytest.approx(x_of(short.started_at), abs=0.01)


def test_a_run_without_duration_is_still_a_visible_bar(make_schedule):
    schedule = make_schedule()
    queued = make_run(schedule, Status.QUEUED, scheduled_for=NOW - timedelta(minutes=1))
    svg = render_timeline([schedule], [queued], {}, now=NOW)
    assert float(bar(svg, queued)["width"]) == MIN_BAR_WIDTH
    assert float(bar(svg, queued)["x"]) == pytest.approx(x_of(queued.scheduled_for), abs=0.01)
    assert "not started (fire time 2026-11-24 11:59:00 UTC)" in svg


def test_a_running_run_extends_to_now(make_schedule):
    schedule = make_schedule()
    running = make_run(schedule, Status.RUNNING, started_at=NOW - timedelta(hours=2))
    svg = render_timeline([schedule], [running], {}, now=NOW)
    attrs = bar(svg, running)
    assert float(attrs["x"]) + float(attrs["width"]) == pytest.approx(x_of(NOW), abs=0.01)
    assert attrs["fill"] == STATUS_COLOURS[Status.RUNNING]
    assert "duration 2 h 0 min so far" in svg
    assert re.search(rf'<line class="now" x1="{x_of(NOW):.1f}"', svg)


def test_runs_older_than_24_hours_are_left_out(make_schedule):
    schedule = make_schedule()
    old = make_run(
        schedule,
        Status.SUCCEEDED,
        started_at=NOW - timedelta(hours=25),
        finished_at=NOW - timedelta(hours=25) + timedelta(minutes=5),
    )
    recent = make_run(
        schedule,
        Status.SUCCEEDED,
        started_at=NOW - timedelta(hours=23),
        finished_at=NOW - timedelta(hours=23) + timedelta(minutes=5),
    )
    svg = render_timeline([schedule], [old, recent], {}, now=NOW)
    assert f'data-run="{old.pk}"' not in svg
    assert f'data-run="{recent.pk}"' in svg


def test_next_fire_times_are_marks_with_their_time_in_a_title(make_schedule):
    schedule = make_schedule(name="hourly", cron="0 * * * *", timezone="Europe/Berlin")
    fires = upcoming_fire_times(schedule, NOW, NOW + timedelta(hours=24))
    assert len(fires) == 24
    svg = render_timeline([schedule], [], {schedule.pk: fires}, now=NOW)
    marks = re.findall(r'<path class="fire"[^>]*><title>([^<]*)</title>', svg)
    assert len(marks) == 24
    assert marks[0] == "hourly: next run 2026-11-24 14:00:00 CET"
    assert marks[-1] == "hourly: next run 2026-11-25 13:00:00 CET"


def test_fire_times_are_capped_per_schedule(make_schedule):
    schedule = make_schedule(interval=60, created_at=NOW - timedelta(days=1))
    fires = upcoming_fire_times(schedule, NOW, NOW + timedelta(hours=24))
    assert len(fires) == FIRE_LIMIT
    assert all(NOW < fire <= NOW + timedelta(hours=24) for fire in fires)


def test_axis_has_hour_labels_and_a_legend_of_status_colours(make_schedule):
    svg = render_timeline([make_schedule()], [], {}, now=NOW)
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
    assert ticks[:3] == ["12:00", "15:00", "18:00"]
    assert "Tue 24 Nov" in ticks
    for status in Status:
        assert f">{status.label}</text>" in svg
        assert f'fill="{STATUS_COLOURS[status]}"/>' in svg


def test_text_is_escaped(make_schedule):
    schedule = make_schedule(name="<script>alert(1)</script>")
    run = make_run(schedule, Status.FAILED, command='<b>"x"</b>', started_at=NOW)
    fires = {schedule.pk: [NOW + timedelta(hours=1)]}
    svg = render_timeline([schedule], [run], fires, now=NOW)
    assert "<script>" not in svg
    assert "<b>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;" in svg


def test_runs_of_deleted_schedules_get_their_own_last_lane(make_schedule):
    kept, gone = make_schedule(name="kept"), make_schedule(name="gone")
    run = make_run(gone, Status.SUCCEEDED, started_at=NOW - timedelta(hours=1))
    gone.delete()
    run.refresh_from_db()
    svg = render_timeline([kept], [run], {}, now=NOW)
    assert lane_labels(svg) == ["kept", "(deleted schedules)"]
    deleted_lane_top = AXIS_HEIGHT + LANE_HEIGHT
    assert deleted_lane_top < float(bar(svg, run)["y"]) < deleted_lane_top + LANE_HEIGHT


@pytest.fixture
def wired_view():
    """The view as a RunAdmin.get_urls() would wire it, called without URL routing."""
    return convert_exception_to_response(
        admin.site.admin_view(partial(timeline_view, model_admin=admin.site.get_model_admin(Run)))
    )


def get(view, user: User):
    request = RequestFactory().get("/admin/scheduler/run/timeline/")
    request.user = user
    return view(request)


def test_view_shows_the_timeline_inside_the_admin_page(wired_view, make_schedule):
    schedule = make_schedule(name="Expire tokens")
    make_run(schedule, Status.SUCCEEDED, started_at=timezone.now() - timedelta(hours=1))
    broken = make_schedule(name="broken timing")
    Schedule.objects.filter(pk=broken.pk).update(cron="61 * * * *", interval=None)
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    response = get(wired_view, user)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page
    assert "Runs: last 24 hours and next 24 hours" in page
    assert 'class="breadcrumbs"' in page
    assert "Expire tokens" in page
    assert "broken timing" in page
    assert 'class="fire' in page  # one mark per fire time, or a band of them


def test_view_draws_runs_from_rows_without_building_run_instances(wired_view, make_schedule):
    # A full page reads RUN_LIMIT runs; as model instances they cost more than the query.
    schedule = make_schedule(name="often")
    for minutes in range(1, 6):
        make_run(schedule, Status.SUCCEEDED, started_at=timezone.now() - timedelta(minutes=minutes))
    alone = make_run(schedule, Status.FAILED, started_at=timezone.now() - timedelta(hours=3))
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    built = []

    def count(sender, instance, **kwargs):
        built.append(instance)

    post_init.connect(count, sender=Run)
    try:
        page = get(wired_view, user).content.decode()
    finally:
        post_init.disconnect(count, sender=Run)
    assert 'class="run-band run-succeeded" data-count="5"' in page
    assert f'class="run run-failed" data-run="{alone.pk}"' in page
    assert reverse("admin:scheduler_run_change", args=[alone.pk]) in page
    assert f"#{alone.pk} {alone.command} Failed" in page
    assert built == []


def test_view_needs_view_permission_on_runs(wired_view):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_schedule"))
    assert get(wired_view, user).status_code == 403


def test_runs_side_by_side_merge_into_a_band_and_a_failure_among_them_stays_apart(
    make_schedule,
):
    schedule = make_schedule(interval=15)
    runs = [
        make_run(
            schedule,
            Status.FAILED if index == 20 else Status.SUCCEEDED,
            scheduled_for=NOW - timedelta(seconds=15 * index),
            started_at=NOW - timedelta(seconds=15 * index),
            finished_at=NOW - timedelta(seconds=15 * index - 2),
        )
        for index in range(1, 41)
    ]
    svg = render_timeline([schedule], runs, {}, now=NOW)
    bands = re.findall(r'<rect class="run-band run-succeeded" data-count="(\d+)"', svg)
    assert sorted(int(count) for count in bands) == [19, 20]
    failed = bar(svg, runs[19])
    assert float(failed["width"]) >= MIN_BAR_WIDTH
    # Too close to its neighbours to fit between them: drawn over them in the lower half.
    assert float(failed["height"]) == BAR_HEIGHT / 2
    # Failures are drawn last, so no band of successes covers them.
    assert svg.index(f'data-run="{runs[19].pk}"') > svg.rindex("run-band run-succeeded")
    assert "20 runs Succeeded, due 2026-11-24 11:50:00 UTC to 2026-11-24 11:54:45 UTC" in svg
    links = re.findall(r'<a href="([^"]*)"><rect class="run-band', svg)
    assert all(f"schedule__id__exact={schedule.pk}" in link for link in links)
    assert all("status__exact=succeeded" in link for link in links)


def test_run_band_links_list_exactly_its_runs(admin_client, make_schedule):
    schedule = make_schedule(interval=15)
    other = make_schedule(interval=15)
    for index in range(1, 11):
        for owner in (schedule, other):
            make_run(
                owner,
                Status.SUCCEEDED,
                scheduled_for=NOW - timedelta(seconds=15 * index),
                started_at=NOW - timedelta(seconds=15 * index),
                finished_at=NOW - timedelta(seconds=15 * index - 1),
            )
    svg = render_timeline([schedule], list(Run.objects.filter(schedule=schedule)), {}, now=NOW)
    (link,) = re.findall(r'<a href="([^"]*)"><rect class="run-band', svg)
    listing = admin_client.get(link.replace("&amp;", "&"))
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 10


def test_fire_times_too_close_to_tell_apart_are_one_outlined_band(make_schedule):
    schedule = make_schedule(name="every 15 s", interval=15, created_at=NOW - timedelta(days=1))
    fires = upcoming_fire_times(schedule, NOW, NOW + timedelta(hours=24))
    svg = render_timeline([schedule], [], {schedule.pk: fires}, now=NOW)
    assert 'class="fire"' not in svg
    (count,) = re.findall(r'<rect class="fire fire-band" data-count="(\d+)"', svg)
    assert int(count) == FIRE_LIMIT


@pytest.mark.parametrize(
    ("span", "labels"),
    [
        (timedelta(hours=1), ["11:00", "11:15", "11:30", "11:45", "12:00"]),
        (timedelta(hours=6), ["06:00", "07:00", "08:00"]),
        (timedelta(days=7), ["18 Nov", "19 Nov", "20 Nov"]),
    ],
)
def test_axis_ticks_follow_the_zoom(make_schedule, span, labels):
    svg = render_timeline([make_schedule()], [], {}, now=NOW, past=span, future=span)
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
    assert ticks[: len(labels)] == labels


def get_query(view, user: User, query: str):
    request = RequestFactory().get("/admin/scheduler/run/timeline/" + query)
    request.user = user
    return view(request)


def test_view_zooms_to_the_span_asked_for(wired_view, make_schedule):
    schedule = make_schedule(name="Expire tokens")
    recent = make_run(schedule, Status.SUCCEEDED, started_at=timezone.now() - timedelta(minutes=30))
    older = make_run(schedule, Status.FAILED, started_at=timezone.now() - timedelta(hours=3))
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    page = get_query(wired_view, user, "?span=1h").content.decode()
    assert "Runs: last 1 hour and next 1 hour" in page
    assert f'data-run="{recent.pk}"' in page
    assert f'data-run="{older.pk}"' not in page
    assert '<span class="selected">1h</span>' in page
    assert '<a href="?span=7d">7d</a>' in page
    week = get_query(wired_view, user, "?span=7d").content.decode()
    assert "Runs: last 7 days and next 7 days" in week
    assert f'data-run="{older.pk}"' in week


def test_view_shows_one_schedule_alone_keeping_it_across_zooms(wired_view, make_schedule):
    shown = make_schedule(name="Expire tokens")
    hidden = make_schedule(name="Nightly batch")
    mine = make_run(shown, Status.SUCCEEDED, started_at=timezone.now() - timedelta(hours=1))
    theirs = make_run(hidden, Status.SUCCEEDED, started_at=timezone.now() - timedelta(hours=1))
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    page = get_query(wired_view, user, f"?schedule={shown.pk}&span=6h").content.decode()
    assert lane_labels(page) == ["Expire tokens"]
    assert f'data-run="{mine.pk}"' in page
    assert f'data-run="{theirs.pk}"' not in page
    assert "Runs of Expire tokens: last 6 hours and next 6 hours" in page
    assert f'<a href="?span=1h&amp;schedule={shown.pk}">1h</a>' in page
    assert f"?schedule__id__exact={shown.pk}" in page


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?span=2h", 400, "Unknown timeline span '2h'; choose one of 1h, 6h, 24h, 7d."),
        ("?schedule=abc", 400, "schedule must be a schedule's id, not 'abc'."),
        ("?schedule=999999", 404, ""),
    ],
)
def test_view_refuses_bad_span_or_schedule_clearly(wired_view, query, status, message):
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    response = get_query(wired_view, user, query)
    assert response.status_code == status
    assert message in response.content.decode()


def test_schedule_page_links_to_its_own_timeline(admin_client, make_schedule):
    schedule = make_schedule()
    page = admin_client.get(
        reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    ).content.decode()
    assert f'href="/admin/scheduler/run/timeline/?schedule={schedule.pk}"' in page


def missed_dots(svg: str) -> list[dict[str, str]]:
    """The attributes and tooltip of each mark of a fire time that did not run."""
    return [
        {**dict(re.findall(r'([\w-]+)="([^"]*)"', attrs)), "title": title}
        for attrs, title in re.findall(
            r'<rect (class="missed [^>]*)><title>([^<]*)</title></rect>', svg
        )
    ]


def hourly_since(make_schedule, hours: int, **fields) -> Schedule:
    """An hourly schedule that has existed for ``hours`` hours before NOW."""
    schedule = make_schedule(cron="0 * * * *", **fields)
    Schedule.objects.filter(pk=schedule.pk).update(created_at=NOW - timedelta(hours=hours))
    schedule.refresh_from_db()
    return schedule


def test_fire_times_without_a_run_are_marked_by_outcome_with_it_in_the_tooltip(make_schedule):
    schedule = hourly_since(make_schedule, 6, name="Hourly")
    Heartbeat.objects.create(
        host="box", pid=1, started_at=NOW - timedelta(hours=3, minutes=30), last_beat=NOW
    )
    ran = make_run(schedule, Status.SUCCEEDED, scheduled_for=NOW - timedelta(hours=1))
    missed = missed_fire_times([schedule], NOW - timedelta(hours=24), NOW)
    outcomes = {v.fire_time: v.outcome for v in missed[schedule.pk]}
    assert ran.scheduled_for not in outcomes
    assert outcomes[NOW - timedelta(hours=8)] == Outcome.BEFORE_CREATED
    assert outcomes[NOW - timedelta(hours=4)] == Outcome.NO_SCHEDULER
    assert outcomes[NOW - timedelta(hours=2)] == Outcome.UNEXPLAINED
    assert NOW not in outcomes  # just due: no miss yet

    svg = render_timeline([schedule], [ran], {}, now=NOW, missed=missed)
    dots = {dot["title"].split(": ")[1].split(" did")[0]: dot for dot in missed_dots(svg)}
    no_daemon = dots[(NOW - timedelta(hours=4)).strftime("%Y-%m-%d %H:%M:%S UTC")]
    assert no_daemon["data-outcome"] == "no scheduler was running"
    assert no_daemon["fill"] == OUTCOME_COLOURS[Outcome.NO_SCHEDULER]
    assert "Hourly:" in no_daemon["title"] and "no scheduler was running" in no_daemon["title"]
    assert abs(float(no_daemon["x"]) + MISSED_RADIUS - x_of(NOW - timedelta(hours=4))) < 0.01
    not_run = dots[(NOW - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S UTC")]
    assert not_run["data-outcome"] == "not run"
    assert not_run["fill"] != no_daemon["fill"]
    assert f'data-run="{ran.pk}"' in svg


def test_paused_and_disabled_fire_times_say_who_and_why(make_schedule):
    paused = hourly_since(make_schedule, 30, name="Paused")
    paused.pause(until=None, reason="supplier API down", by="alice")
    ScheduleChange.objects.filter(schedule=paused, action="changed").update(
        changed_at=NOW - timedelta(hours=5)
    )
    disabled = hourly_since(make_schedule, 30, name="Disabled")
    with changed_by("bob", "admin"):
        disabled.enabled = False
        disabled.save()
    ScheduleChange.objects.filter(schedule=disabled, action="changed").update(
        changed_at=NOW - timedelta(hours=3)
    )
    Heartbeat.objects.create(host="box", pid=1, started_at=NOW - timedelta(days=2), last_beat=NOW)

    missed = missed_fire_times([paused, disabled], NOW - timedelta(hours=24), NOW)
    pauses = [v for v in missed[paused.pk] if v.outcome == Outcome.PAUSED]
    assert [v.fire_time for v in pauses] == [NOW - timedelta(hours=h) for h in range(5, -1, -1)]
    assert pauses[0].extra["by"] == "alice"
    assert pauses[0].extra["reason"] == "supplier API down"
    assert {v.outcome for v in missed[disabled.pk] if v.fire_time > NOW - timedelta(hours=3)} == {
        Outcome.DISABLED
    }

    svg = render_timeline([paused, disabled], [], {}, now=NOW, missed=missed)
    titles = [dot["title"] for dot in missed_dots(svg) if dot["data-outcome"] == "paused"]
    assert titles and "alice: supplier API down" in titles[0]
    disabled_dots = [dot for dot in missed_dots(svg) if dot["data-outcome"] == "disabled"]
    assert disabled_dots and "disabled by bob" in disabled_dots[-1]["title"]


def test_missed_fire_times_of_a_frequent_schedule_are_bounded_and_merge_into_a_band(
    make_schedule,
):
    schedule = make_schedule(name="Every second", interval=1)
    Schedule.objects.filter(pk=schedule.pk).update(created_at=NOW - timedelta(days=1))
    schedule.refresh_from_db()
    missed = missed_fire_times([schedule], NOW - timedelta(hours=24), NOW)
    assert len(missed[schedule.pk]) <= MISSED_LIMIT
    assert missed[schedule.pk][-1].fire_time > NOW - timedelta(minutes=2)
    svg = render_timeline([schedule], [], {}, now=NOW, missed=missed)
    dots = missed_dots(svg)
    assert len(dots) == 1
    assert dots[0]["data-count"] == str(len(missed[schedule.pk]))
    assert f"{len(missed[schedule.pk])} fire times did not run" in dots[0]["title"]


def test_legend_names_each_outcome_of_a_fire_time_that_did_not_run(make_schedule):
    svg = render_timeline([make_schedule()], [], {}, now=NOW, missed={})
    assert "Fire time did not run:" in svg
    for outcome, colour in OUTCOME_COLOURS.items():
        assert f">{outcome.value}</text>" in svg
        assert f'fill="{colour}"' in svg
    assert "Fire time did not run:" not in render_timeline([], [], {}, now=NOW)


def test_view_marks_missed_fire_times_in_few_queries_however_many_schedules(
    wired_view, make_schedule, django_assert_max_num_queries
):
    now = timezone.now()
    for index in range(30):
        schedule = make_schedule(name=f"job {index:02}", interval=600)
        Schedule.objects.filter(pk=schedule.pk).update(created_at=now - timedelta(days=2))
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    with django_assert_max_num_queries(20):
        page = get_query(wired_view, user, "").content.decode()
    dots = missed_dots(page)
    assert {dot["data-outcome"] for dot in dots} == {"no scheduler was running"}
    assert len({dot["title"].split(":")[0] for dot in dots}) == 30
    assert "Fire time did not run:" in page
