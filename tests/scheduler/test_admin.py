from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from scheduler.models import Alert, AlertKind, Reason, Run, Schedule, Status
from scheduler.owners import Owner

pytestmark = pytest.mark.django_db

FIRE = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def finished_run(make_schedule):
    schedule = make_schedule(name="token cleanup", command="cleanup_tokens", args=["--days", "7"])
    run = Run.claim(schedule.pk, FIRE, Reason.SCHEDULED, owner=Owner("box", 1))
    run.status, run.exit_code = Status.FAILED, 3
    run.stdout, run.stderr = "<b>line one</b>\nline two", "CommandError: boom"
    run.finished_at = run.started_at
    run.save()
    return run


@pytest.fixture
def staff(client):
    """Log in a staff user holding the given permission codenames."""

    def login(*codenames: str) -> User:
        user = User.objects.create_user("staff", password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client.force_login(user)
        return user

    return login


def test_schedule_list_shows_command_timing_next_and_last_run(admin_client, finished_run):
    page = admin_client.get(reverse("admin:scheduler_schedule_changelist")).content.decode()
    assert "cleanup_tokens --days 7" in page
    assert "Every minute" in page
    assert "in " in page  # next run, relative
    assert "Failed" in page


def test_schedule_page_shows_next_five_fire_times_and_recent_runs(admin_client, make_schedule):
    schedule = make_schedule(cron="30 3 * * 1-5", timezone="Europe/Berlin")
    page = admin_client.get(
        reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    ).content.decode()
    assert "At 03:30, Monday through Friday (Europe/Berlin)" in page
    assert page.count(" CET</li>") + page.count(" CEST</li>") == 5
    assert "No runs yet." in page


def test_bad_cron_is_refused_in_the_form_with_its_reason(admin_client):
    response = admin_client.post(
        reverse("admin:scheduler_schedule_add"),
        {
            "name": "broken",
            "command": "say",
            "args": '["hi"]',
            "cron": "0 25 * * *",
            "timezone": "UTC",
            "enabled": "on",
            "catch_up": "on",
            "overlap": "skip",
            "executor": "",
        },
    )
    assert response.status_code == 200
    assert "Bad hour" in response.content.decode()
    assert not Schedule.objects.exists()


def test_run_now_queues_a_manual_run_without_running_it(admin_client, make_schedule):
    schedule = make_schedule()
    response = admin_client.post(
        reverse("admin:scheduler_schedule_changelist"),
        {"action": "run_now", "_selected_action": [schedule.pk]},
        follow=True,
    )
    run = Run.objects.get()
    assert (run.reason, run.status) == (Reason.MANUAL, Status.QUEUED)
    assert f"run #{run.pk}" in response.content.decode()


def test_run_now_needs_its_own_permission(client, staff, make_schedule):
    staff("view_schedule", "change_schedule")
    schedule = make_schedule()
    page = client.get(reverse("admin:scheduler_schedule_changelist")).content.decode()
    assert "run_now" not in page
    client.post(
        reverse("admin:scheduler_schedule_changelist"),
        {"action": "run_now", "_selected_action": [schedule.pk]},
    )
    assert not Run.objects.exists()


def test_enable_and_disable_actions_touch_updated_at(admin_client, make_schedule):
    schedule = make_schedule()
    before = schedule.updated_at
    admin_client.post(
        reverse("admin:scheduler_schedule_changelist"),
        {"action": "disable", "_selected_action": [schedule.pk]},
    )
    schedule.refresh_from_db()
    assert schedule.enabled is False
    assert schedule.updated_at > before


def test_run_list_filters_searches_and_is_read_only(admin_client, finished_run):
    url = reverse("admin:scheduler_run_changelist")

    def shown(query: str) -> int:
        return admin_client.get(url + query).context["cl"].result_count

    assert shown("?status__exact=failed") == 1
    assert shown("?status__exact=succeeded") == 0
    assert shown("?reason__exact=scheduled") == 1
    assert shown(f"?schedule__id__exact={finished_run.schedule_id}") == 1
    assert shown("?q=boom&search_output=yes") == 1  # output only when asked for
    assert shown("?q=boom") == 0
    assert shown("?q=cleanup") == 1  # the schedule's command
    assert shown(f"?q=%23{finished_run.pk}") == 1  # the run's number
    assert shown("?q=nothing-like-this") == 0
    assert "cleanup_tokens --days 7" in admin_client.get(url).content.decode()
    assert admin_client.get(reverse("admin:scheduler_run_add")).status_code == 403


def test_run_page_shows_output_preformatted_and_escaped(admin_client, finished_run):
    page = admin_client.get(
        reverse("admin:scheduler_run_change", args=[finished_run.pk])
    ).content.decode()
    assert "<pre" in page
    assert "&lt;b&gt;line one&lt;/b&gt;" in page
    assert "CommandError: boom" in page
    assert reverse("admin:scheduler_schedule_change", args=[finished_run.schedule_id]) in page


def test_schedule_page_links_to_its_runs(admin_client, finished_run):
    page = admin_client.get(
        reverse("admin:scheduler_schedule_change", args=[finished_run.schedule_id])
    ).content.decode()
    assert f"?schedule__id__exact={finished_run.schedule_id}" in page
    assert f"#{finished_run.pk}" in page


def test_run_output_needs_view_permission_on_runs(client, staff, finished_run):
    staff("view_schedule")
    response = client.get(reverse("admin:scheduler_run_change", args=[finished_run.pk]))
    assert response.status_code == 403


def test_a_running_run_page_refreshes_itself_and_a_finished_one_does_not(
    admin_client, make_schedule, finished_run
):
    running = Run.claim(make_schedule().pk, FIRE, Reason.SCHEDULED, owner=Owner("box", 1))
    live = admin_client.get(reverse("admin:scheduler_run_change", args=[running.pk]))
    done = admin_client.get(reverse("admin:scheduler_run_change", args=[finished_run.pk]))
    assert '<meta http-equiv="refresh" content="2">' in live.content.decode()
    assert "http-equiv" not in done.content.decode()


def test_schedules_filter_by_last_run_status_and_show_success_rate(
    admin_client, finished_run, make_schedule
):
    make_schedule(name="never ran")
    url = reverse("admin:scheduler_schedule_changelist")
    failed = admin_client.get(url + "?last_status=failed").context["cl"]
    never = admin_client.get(url + "?last_status=never").context["cl"]
    assert [s.name for s in failed.result_list] == ["token cleanup"]
    assert [s.name for s in never.result_list] == ["never ran"]
    assert "0 % of 1" in admin_client.get(url).content.decode()


def test_timeline_is_linked_from_the_run_list(admin_client, finished_run):
    page = admin_client.get(reverse("admin:scheduler_run_changelist")).content.decode()
    timeline = reverse("admin:scheduler_run_timeline")
    assert timeline in page
    assert "<svg" in admin_client.get(timeline).content.decode()


def test_a_run_waiting_for_a_worker_shows_how_long_it_has_been_queued(
    admin_client, make_schedule, time_machine
):
    time_machine.move_to(datetime(2026, 11, 24, 3, 0, tzinfo=UTC), tick=False)
    run = Run.claim_manual(make_schedule(executor="tasks"))
    run.claim_enqueue()
    run.record_task_id("task-42")
    time_machine.move_to(datetime(2026, 11, 24, 3, 7, 30, tzinfo=UTC), tick=False)

    listing = admin_client.get(reverse("admin:scheduler_run_changelist")).content.decode()
    page = admin_client.get(reverse("admin:scheduler_run_change", args=[run.pk])).content.decode()
    assert 'Queued</span> <span class="queued-for">for 7 min</span>' in listing
    assert "task-42" in page
    assert "2026-11-24 03:00:00.000" in page  # handed to the task backend


def test_pages_render_a_schedule_written_around_validation(admin_client, make_schedule):
    bad = make_schedule(name="huge interval")
    local = make_schedule(name="host zone", cron="@daily")
    make_schedule(name="fine")
    # SQLite stores any 64-bit integer; PostgreSQL's integer column stops at 2**31 - 1.
    huge = 10**12 if connection.vendor == "sqlite" else 2**31 - 1
    Schedule.objects.filter(pk=bad.pk).update(interval=huge, keep_days=huge, timeout=huge)
    Schedule.objects.filter(pk=local.pk).update(timezone="localtime")
    listing = admin_client.get(reverse("admin:scheduler_schedule_changelist"))
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "at most 31536000 seconds" in page
    assert "depends on each host" in page
    for schedule in (bad, local):
        change = admin_client.get(reverse("admin:scheduler_schedule_change", args=[schedule.pk]))
        assert change.status_code == 200
    timeline = admin_client.get(reverse("admin:scheduler_run_timeline"))
    assert timeline.status_code == 200
    assert "fine" in timeline.content.decode()


def test_a_schedule_page_shows_its_alerts_and_the_alert_list_is_read_only(
    admin_client, make_schedule
):
    schedule = make_schedule(late_after=30)
    Alert.objects.create(schedule=schedule, kind=AlertKind.LATE, message="Due <03:00> late.")
    Alert.objects.create(
        schedule=schedule,
        kind=AlertKind.LONG,
        message="Run #1 long.",
        cleared_at=timezone.now(),
        note="It ended.",
    )
    page = admin_client.get(f"/admin/scheduler/schedule/{schedule.pk}/change/").content.decode()
    assert "Due &lt;03:00&gt; late." in page
    assert "Run #1 long. (It ended.)" in page
    assert 'name="late_after"' in page
    listing = admin_client.get("/admin/scheduler/alert/")
    assert listing.status_code == 200 and "Due &lt;03:00&gt; late." in listing.content.decode()
    assert admin_client.get("/admin/scheduler/alert/add/").status_code == 403


def test_run_list_times_show_seconds_with_reason_exit_code_and_host(admin_client, finished_run):
    Run.objects.filter(pk=finished_run.pk).update(
        scheduled_for=datetime(2026, 11, 24, 4, 51, 15, tzinfo=UTC),
        started_at=datetime(2026, 11, 24, 4, 51, 16, tzinfo=UTC),
        host="worker-3.example.internal",
    )
    page = admin_client.get(reverse("admin:scheduler_run_changelist")).content.decode()
    assert '<span class="date">2026-11-24</span> <span class="time">04:51:15</span>' in page
    assert '<span class="time">04:51:16</span>' in page  # same day: the date is not repeated
    assert "exit code 3" in page
    assert 'title="worker-3.example.internal">on worker-3</small>' in page
    assert "a.m." not in page


def test_run_page_hides_task_backend_fields_for_a_run_that_never_went_to_one(
    admin_client, finished_run
):
    url = reverse("admin:scheduler_run_change", args=[finished_run.pk])
    page = admin_client.get(url).content.decode()
    assert "field-task_id" not in page
    assert "field-enqueued_at_display" not in page
    assert "field-started_at_display" in page

    Run.objects.filter(pk=finished_run.pk).update(
        executor="tasks", task_id="abc-123", enqueued_at=FIRE
    )
    page = admin_client.get(url).content.decode()
    assert "field-task_id" in page
    assert "abc-123" in page
    assert "field-enqueued_at_display" in page
