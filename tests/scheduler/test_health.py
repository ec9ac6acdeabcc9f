from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models.functions import Now
from django.utils import timezone

from scheduler.health import check_health
from scheduler.models import Heartbeat, Run

pytestmark = pytest.mark.django_db


def health_command(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("schedulerhealth", *args, stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def beat(age_seconds: float, host: str = "box") -> Heartbeat:
    """A daemon that beat ``age_seconds`` ago by the database's clock (which stamps beats)."""
    return Heartbeat.objects.create(
        host=host, pid=1, last_beat=Now() - timedelta(seconds=age_seconds)
    )


def test_no_daemon_is_unhealthy():
    assert health_command() == (2, "none: 0 of 0 daemon(s) fresh, 0 run(s) queued\n")


def test_only_stale_daemons_are_unhealthy():
    beat(300)
    code, output = health_command()
    assert code == 1
    assert output.startswith("stale: 0 of 1")


def test_a_fresh_daemon_is_healthy():
    beat(300)
    beat(2)
    code, output = health_command()
    assert code == 0
    assert output.startswith("ok: 1 of 2")


def test_this_host_ignores_daemons_elsewhere():
    beat(2, host="elsewhere")
    assert health_command("--this-host")[0] == 2


def test_json_report_counts_queued_runs(make_schedule):
    beat(2)
    Run.claim_manual(make_schedule())
    code, output = health_command("--json")
    report = json.loads(output)
    assert code == 0
    assert report["status"] == "ok"
    assert report["queued"] == 1
    assert report["daemons"][0]["fresh"] is True


def test_stopped_daemons_do_not_count():
    Heartbeat.objects.create(host="box", pid=1, stopped_at=timezone.now())
    assert check_health(timezone.now()).status == "none"


def test_health_url_answers_with_the_same_verdict(client):
    response = client.get("/scheduler/health/")
    assert response.status_code == 503
    assert response.json()["status"] == "none"
    beat(1)
    response = client.get("/scheduler/health/")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_text_report_gives_the_age_of_the_oldest_queued_run(make_schedule, time_machine):
    time_machine.move_to(datetime(2026, 11, 24, 3, 0, tzinfo=UTC), tick=False)
    Run.claim_manual(make_schedule(executor="tasks"))
    time_machine.move_to(datetime(2026, 11, 24, 3, 12, tzinfo=UTC), tick=False)
    beat(2)
    assert health_command()[1] == (
        "ok: 1 of 1 daemon(s) fresh, 1 run(s) queued, the oldest for 12 min\n"
    )
