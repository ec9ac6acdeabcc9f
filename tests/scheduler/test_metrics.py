from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from scheduler.metrics import DURATION_BUCKETS
from scheduler.models import Alert, AlertKind, DatabaseOutage, Heartbeat, Reason, Run, Status

TOKEN = "s3cret-token-for-metrics"
pytestmark = pytest.mark.django_db


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the exposition with Prometheus's own parser: {(sample, labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, **headers) -> str:
    response = client.get("/scheduler/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def add_run(schedule, status, *, due, started=None, took=None, reason=Reason.SCHEDULED):
    return Run.objects.create(
        schedule=schedule,
        command=schedule.command if schedule else "say",
        reason=reason,
        status=status,
        scheduled_for=due,
        started_at=started,
        finished_at=started + took if started and took is not None else None,
    )


@pytest.fixture
def history(make_schedule):
    """Runs of two schedules, one deleted schedule's run, and an old run out of the window."""
    now = timezone.now()
    nightly, hourly = make_schedule(name="nightly"), make_schedule(name="hourly")
    base = now - timedelta(hours=1)
    add_run(nightly, Status.SUCCEEDED, due=base, started=base + timedelta(seconds=0.3),
            took=timedelta(seconds=3))  # fmt: skip
    add_run(nightly, Status.FAILED, due=base + timedelta(minutes=1),
            started=base + timedelta(minutes=1, seconds=7), took=timedelta(seconds=40))  # fmt: skip
    add_run(nightly, Status.SKIPPED, due=base + timedelta(minutes=2))
    add_run(hourly, Status.SUCCEEDED, due=base, started=base + timedelta(seconds=1),
            took=timedelta(seconds=400))  # fmt: skip
    add_run(hourly, Status.RUNNING, due=base + timedelta(minutes=5),
            started=base + timedelta(minutes=5))  # fmt: skip
    queued = add_run(hourly, Status.QUEUED, due=base + timedelta(minutes=6))
    Run.objects.filter(pk=queued.pk).update(executor="tasks")
    old = now - timedelta(days=3)
    add_run(hourly, Status.SUCCEEDED, due=old, started=old, took=timedelta(seconds=2))
    add_run(None, Status.SUCCEEDED, due=base, started=base, took=timedelta(seconds=1))
    return now, nightly, hourly


@override_settings(SCHEDULER={"METRICS_TOKEN": TOKEN})
def test_the_metrics_match_the_run_table(client, history):
    now, nightly, hourly = history
    Heartbeat.start(host="a", pid=1)
    Heartbeat.start(host="b", pid=2).stop()
    DatabaseOutage.objects.create(
        host="a", pid=1, started_at=now, ended_at=now + timedelta(seconds=12)
    )
    DatabaseOutage.objects.create(
        host="b", pid=2, started_at=now, ended_at=now + timedelta(seconds=3)
    )
    Alert.objects.create(schedule=nightly, kind=AlertKind.LONG, message="m")

    values = samples(scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}"))

    expected_runs = {}
    for run in Run.objects.select_related("schedule"):
        key = (run.schedule.name if run.schedule else "", run.status)
        expected_runs[key] = expected_runs.get(key, 0) + 1
    got_runs = {
        (dict(labels)["schedule"], dict(labels)["status"]): value
        for (name, labels), value in values.items()
        if name == "scheduler_runs"
    }
    assert got_runs == expected_runs
    assert sum(got_runs.values()) == Run.objects.count()

    def duration(schedule: str, le: str) -> float:
        return values[
            ("scheduler_run_duration_seconds_bucket", (("le", le), ("schedule", schedule)))
        ]

    # nightly: 3 s and 40 s in the window; hourly: 400 s (its 2 s run is 3 days old).
    assert duration("nightly", "1.0") == 0
    assert duration("nightly", "5.0") == 1
    assert duration("nightly", "60.0") == 2
    assert duration("nightly", "+Inf") == 2
    assert values[("scheduler_run_duration_seconds_count", (("schedule", "nightly"),))] == 2
    assert values[("scheduler_run_duration_seconds_sum", (("schedule", "nightly"),))] == 43
    assert duration("hourly", "300.0") == 0 and duration("hourly", "900.0") == 1
    assert values[("scheduler_run_duration_seconds_count", (("schedule", "hourly"),))] == 1
    assert duration("", "1.0") == 1  # the deleted schedule's run
    assert len([k for k in values if k[0] == "scheduler_run_duration_seconds_bucket"]) == 3 * (
        len(DURATION_BUCKETS) + 1
    )

    def lateness(schedule: str, le: str) -> float:
        return values[
            ("scheduler_start_lateness_seconds_bucket", (("le", le), ("schedule", schedule)))
        ]

    assert lateness("nightly", "0.1") == 0
    assert lateness("nightly", "0.5") == 1
    assert lateness("nightly", "5.0") == 1
    assert lateness("nightly", "10.0") == 2
    assert values[
        ("scheduler_start_lateness_seconds_sum", (("schedule", "nightly"),))
    ] == pytest.approx(7.3)
    assert lateness("hourly", "0.1") == 1  # the running one started on time
    assert lateness("hourly", "1.0") == 2
    assert values[("scheduler_start_lateness_seconds_count", (("schedule", "hourly"),))] == 2

    assert values[("scheduler_runs_queued", (("executor", "tasks"),))] == 1
    last = Run.objects.filter(schedule=hourly, status=Status.SUCCEEDED).latest("finished_at")
    assert values[("scheduler_last_success_timestamp_seconds", (("schedule", "hourly"),))] == (
        pytest.approx(last.finished_at.timestamp())
    )
    assert values[("scheduler_daemons_live", ())] == 1
    assert values[("scheduler_database_outages_total", ())] == 2
    assert values[("scheduler_database_outage_seconds_total", ())] == 15
    assert values[("scheduler_alerts_open", (("kind", "long"), ("schedule", "nightly")))] == 1


def test_staff_may_read_the_metrics(client):
    client.force_login(User.objects.create_user("ops", is_staff=True))
    assert "scheduler_daemons_live 0.0" in scrape(client)


@override_settings(SCHEDULER={"METRICS_TOKEN": TOKEN})
def test_without_credentials_the_metrics_are_refused(client):
    response = client.get("/scheduler/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/scheduler/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403
    client.force_login(User.objects.create_user("someone"))
    assert client.get("/scheduler/metrics").status_code == 403


def test_without_a_configured_token_no_bearer_token_is_accepted(client):
    response = client.get("/scheduler/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403


@pytest.mark.parametrize("token", [12345, "short"])
def test_a_bad_metrics_token_is_a_system_check_error(token):
    with override_settings(SCHEDULER={"METRICS_TOKEN": token}):
        with pytest.raises(SystemCheckError, match=r"scheduler\.E013"):
            call_command("check")
