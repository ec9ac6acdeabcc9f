from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from scheduler import alerts
from scheduler.alerts import Clear, Facts, OpenAlert, Raise, decide
from scheduler.models import Alert, AlertKind, Reason, Run, Schedule, Status
from scheduler.signals import alert_cleared, alert_raised
from tests.conftest import wait_for

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ADMINS = [("Ops", "ops@example.com")]


def test_a_fire_time_overdue_by_late_after_raises_a_late_alert():
    facts = Facts(1, late_after=60, due=NOW - timedelta(seconds=60))
    [decision] = decide([facts], [], NOW)
    assert isinstance(decision, Raise) and decision.kind == AlertKind.LATE
    assert "has not started 60 s after it was due" in decision.message


def test_a_fire_time_not_yet_overdue_raises_nothing():
    assert decide([Facts(1, late_after=60, due=NOW - timedelta(seconds=59))], [], NOW) == []


def test_an_open_alert_is_not_raised_again():
    facts = Facts(1, late_after=60, due=NOW - timedelta(hours=1))
    assert decide([facts], [OpenAlert(7, 1, AlertKind.LATE)], NOW) == []


def test_an_alert_clears_with_a_note_when_its_condition_ends():
    [decision] = decide([Facts(1, late_after=60)], [OpenAlert(7, 1, AlertKind.LATE)], NOW)
    assert isinstance(decision, Clear) and decision.alert_id == 7 and decision.note


def test_a_run_going_longer_than_long_after_raises_a_long_alert_naming_it():
    facts = Facts(1, long_after=10, running=(42, NOW - timedelta(seconds=11)))
    [decision] = decide([facts], [], NOW)
    assert decision == Raise(1, AlertKind.LONG, decision.message, 42)
    assert "is not stopped" in decision.message


def test_no_success_within_the_expected_time_raises_an_alert():
    facts = Facts(1, expect_success_within=3600, success_since=NOW - timedelta(hours=2))
    [decision] = decide([facts], [], NOW)
    assert isinstance(decision, Raise) and decision.kind == AlertKind.NO_SUCCESS
    ok = Facts(1, expect_success_within=3600, success_since=NOW - timedelta(minutes=5))
    assert decide([ok], [], NOW) == []


def test_alerts_of_a_disabled_schedule_or_one_no_longer_setting_them_clear():
    decisions = decide(
        [Facts(1)], [OpenAlert(7, 1, AlertKind.LONG), OpenAlert(8, 2, AlertKind.LATE)], NOW
    )
    assert {d.alert_id for d in decisions if isinstance(d, Clear)} == {7, 8}


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["late_after", "long_after", "expect_success_within"])
def test_alert_thresholds_are_bounded(make_schedule, field):
    for bad in (0, 365 * 24 * 3600 + 1):
        with pytest.raises(ValidationError) as error:
            make_schedule(**{field: bad})
        assert field in error.value.message_dict
    assert getattr(make_schedule(**{field: 1}), field) == 1


@pytest.fixture
def admins(settings):
    settings.ADMINS = ADMINS
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def received():
    seen: list[tuple[str, Alert]] = []

    def on_raised(sender, alert, **kwargs):
        seen.append(("raised", alert))

    def on_cleared(sender, alert, **kwargs):
        seen.append(("cleared", alert))

    alert_raised.connect(on_raised)
    alert_cleared.connect(on_cleared)
    yield seen
    alert_raised.disconnect(on_raised)
    alert_cleared.disconnect(on_cleared)


@pytest.mark.django_db
def test_an_unclaimed_fire_time_raises_once_mails_signals_and_clears_when_claimed(
    make_schedule, admins, received, time_machine
):
    time_machine.move_to(NOW, tick=False)
    schedule = make_schedule(interval=60, late_after=5)
    assert alerts.check(NOW + timedelta(seconds=64)) == []
    [alert] = alerts.check(NOW + timedelta(seconds=65))
    assert alert.kind == AlertKind.LATE and alert.is_open
    assert alerts.check(NOW + timedelta(seconds=66)) == []  # once, however often checked
    assert len(mail.outbox) == 1 and "alert" in mail.outbox[0].subject
    Run.objects.create(
        schedule=schedule,
        command="say",
        reason=Reason.SCHEDULED,
        status=Status.SUCCEEDED,
        scheduled_for=NOW + timedelta(seconds=60),
    )
    [cleared] = alerts.check(NOW + timedelta(seconds=67))
    assert cleared.pk == alert.pk and cleared.cleared_at and cleared.note
    assert [kind for kind, _ in received] == ["raised", "cleared"]
    assert len(mail.outbox) == 2 and "cleared" in mail.outbox[1].subject


@pytest.mark.django_db
def test_a_paused_schedule_raises_no_alert_and_its_clocks_start_at_the_pause_end(
    make_schedule, time_machine
):
    time_machine.move_to(NOW, tick=False)
    schedule = make_schedule(interval=60, late_after=5, expect_success_within=120)
    schedule.paused_until = NOW + timedelta(seconds=600)
    schedule.save()
    assert alerts.check(NOW + timedelta(seconds=300)) == []  # fire times and no success: paused
    assert alerts.check(NOW + timedelta(seconds=604)) == []  # nothing due since the pause ended
    kinds = {alert.kind for alert in alerts.check(NOW + timedelta(seconds=725))}
    assert kinds == {AlertKind.LATE, AlertKind.NO_SUCCESS}  # counted from the pause's end


@pytest.mark.django_db
def test_a_second_raise_of_an_open_alert_is_refused_by_the_database(make_schedule):
    schedule = make_schedule(long_after=5)
    raised = alerts.apply([Raise(schedule.pk, AlertKind.LONG, "first")], NOW)
    again = alerts.apply([Raise(schedule.pk, AlertKind.LONG, "second")], NOW)
    assert len(raised) == 1 and again == []
    assert Alert.objects.count() == 1


@pytest.mark.django_db
def test_a_queued_fire_time_not_started_is_late(make_schedule, time_machine):
    time_machine.move_to(NOW, tick=False)
    schedule = make_schedule(interval=3600, late_after=30)
    Run.objects.create(
        schedule=schedule,
        command="say",
        reason=Reason.SCHEDULED,
        status=Status.QUEUED,
        scheduled_for=NOW + timedelta(seconds=3600),
    )
    assert alerts.check(NOW + timedelta(seconds=3629)) == []
    [alert] = alerts.check(NOW + timedelta(seconds=3630))
    assert alert.kind == AlertKind.LATE


@pytest.mark.django_db
def test_a_long_run_alert_names_the_run_and_clears_when_it_ends(make_schedule, time_machine):
    time_machine.move_to(NOW, tick=False)
    schedule = make_schedule(long_after=10)
    run = Run.objects.create(
        schedule=schedule,
        command="say",
        reason=Reason.SCHEDULED,
        status=Status.RUNNING,
        scheduled_for=NOW,
        started_at=NOW,
    )
    [alert] = alerts.check(NOW + timedelta(seconds=10))
    assert alert.run_id == run.pk
    Run.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, finished_at=NOW)
    [cleared] = alerts.check(NOW + timedelta(seconds=11))
    assert cleared.cleared_at is not None


@pytest.fixture
def monitor() -> Iterator[tuple[str, Counter[str]]]:
    """A ping monitor on 127.0.0.1: its URL and a count of the paths it was sent."""
    paths: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths[self.path] += 1
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", paths
    server.shutdown()
    server.server_close()


def alerts_of(schedule: Schedule) -> list[Alert]:
    return list(Alert.objects.filter(schedule=schedule).order_by("pk"))


def cleared_once(schedule: Schedule, paths: Counter[str], name: str) -> None:
    """Wait until the schedule's one alert cleared; it was raised and pinged once."""
    [alert] = wait_for(lambda: [a for a in alerts_of(schedule) if a.cleared_at], 30)
    assert alert.note
    assert len(alerts_of(schedule)) == 1
    assert paths[f"/{name}/fail"] == 1


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_each_alert_is_raised_once_by_two_daemons_and_clears(start_daemon, make_schedule, monitor):
    url, paths = monitor
    late = make_schedule(
        name="late", interval=6, catch_up=False, late_after=2, ping_url=f"{url}/late"
    )
    # Created 8 s ago: its fire time 2 s ago was missed, and catch-up is off.
    Schedule.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(seconds=8))
    long = make_schedule(
        name="long",
        command="sleep_for",
        args=["6"],
        interval=3600,
        long_after=2,
        ping_url=f"{url}/long",
    )
    quiet = make_schedule(
        name="quiet", interval=3600, expect_success_within=3, ping_url=f"{url}/quiet"
    )
    start_daemon()
    start_daemon()

    wait_for(lambda: alerts_of(late), 20)
    wait_for(lambda: alerts_of(quiet), 20)
    Run.claim_manual(long)
    [raised] = wait_for(lambda: alerts_of(long), 20)
    assert raised.kind == AlertKind.LONG and raised.run is not None
    assert raised.run.status == Status.RUNNING  # a warning: the run goes on
    wait_for(lambda: paths["/quiet/fail"] and paths["/late/fail"] and paths["/long/fail"], 10)

    Run.claim_manual(quiet)
    cleared_once(quiet, paths, "quiet")
    cleared_once(long, paths, "long")
    assert Run.objects.get(pk=raised.run_id).status == Status.SUCCEEDED
    cleared_once(late, paths, "late")
    assert [a.kind for a in alerts_of(late)] == [AlertKind.LATE]
