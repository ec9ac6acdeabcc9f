"""Why each fire time ran or not: a pure function of runs, edits, daemon up-time and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.why import ChangeFact, Facts, Outcome, RunFact, Span, explain

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def facts(**fields: object) -> Facts:
    """A schedule created at T0, catch-up on, enabled, a daemon up all along."""
    fields.setdefault("created_at", T0)
    fields.setdefault("catch_up", True)
    fields.setdefault("catch_up_window", None)
    fields.setdefault("current", {"enabled": True, "paused_until": None})
    fields.setdefault("daemons", [Span(T0 - timedelta(days=1), None)])
    return Facts(**fields)  # type: ignore[arg-type]


def run(
    id: int, fire: datetime, status: str = "succeeded", reason: str = "scheduled", **kw: object
) -> RunFact:
    kw.setdefault("created_at", fire)
    kw.setdefault("started_at", fire if status != "skipped" else None)
    kw.setdefault("finished_at", fire + timedelta(seconds=1))
    return RunFact(id, fire, reason, status, **kw)  # type: ignore[arg-type]


def outcome(fire: datetime, f: Facts, now: datetime = NOW):
    [verdict] = explain([fire], f, now)
    return verdict


def test_a_fire_time_with_its_run_ran_and_names_the_run_and_its_status():
    verdict = outcome(minutes(10), facts(runs=[run(7, minutes(10), "failed")]))
    assert (verdict.outcome, verdict.run_id, verdict.extra["status"]) == (Outcome.RAN, 7, "failed")


def test_a_skipped_fire_time_names_the_run_that_was_still_going():
    long = run(3, minutes(0), "succeeded", finished_at=minutes(25))
    skipped = run(4, minutes(10), "skipped")
    verdict = outcome(minutes(10), facts(runs=[long, skipped]))
    assert (verdict.outcome, verdict.run_id, verdict.extra["blocked_by"]) == (
        Outcome.SKIPPED,
        4,
        3,
    )
    assert "run #3 was still going" in verdict.detail


def test_missed_fire_times_coalesced_into_a_catch_up_run_were_caught_up_by_it():
    catch = run(9, minutes(30), reason="catch_up", created_at=minutes(31))
    f = facts(runs=[run(1, minutes(0)), catch], daemons=[Span(minutes(31), None)])
    verdicts = explain([minutes(10), minutes(20), minutes(30)], f, NOW)
    assert [(v.outcome, v.run_id) for v in verdicts] == [(Outcome.CAUGHT_UP, 9)] * 3


def test_with_catch_up_off_a_fire_time_missed_while_down_was_not_caught_up():
    f = facts(
        catch_up=False,
        runs=[run(1, minutes(0)), run(2, minutes(40))],
        daemons=[Span(T0 - timedelta(hours=1), minutes(5)), Span(minutes(35), None)],
    )
    verdict = outcome(minutes(20), f)
    assert verdict.outcome is Outcome.NOT_CAUGHT_UP
    assert "catch-up is off" in verdict.detail
    assert "no scheduler was running" in verdict.detail


def test_a_missed_fire_time_outside_the_window_was_not_caught_up():
    f = facts(
        catch_up_window=60,
        runs=[run(2, minutes(40))],
        daemons=[Span(minutes(35), None)],
    )
    verdict = outcome(minutes(20), f)
    assert verdict.outcome is Outcome.NOT_CAUGHT_UP
    assert "60 s catch-up window" in verdict.detail


def test_a_fire_time_in_a_pause_says_who_paused_it_why_and_until_when():
    pause = ChangeFact(
        minutes(5),
        "alice",
        "cli",
        {
            "paused_until": [None, minutes(25).isoformat()],
            "pause_reason": ["", "migrating"],
            "paused_by": ["", "alice"],
        },
    )
    verdict = outcome(minutes(20), facts(changes=[pause]))
    assert verdict.outcome is Outcome.PAUSED
    assert (verdict.extra["by"], verdict.extra["reason"]) == ("alice", "migrating")
    assert outcome(minutes(30), facts(changes=[pause])).outcome is not Outcome.PAUSED


def test_a_pause_ended_early_by_resume_covers_fire_times_up_to_the_resume_only():
    pause = ChangeFact(
        minutes(5), "a", "cli", {"paused_until": [None, "9999-01-01T00:00:00+00:00"]}
    )
    resume = ChangeFact(
        minutes(15),
        "a",
        "cli",
        {"paused_until": ["9999-01-01T00:00:00+00:00", minutes(15).isoformat()]},
    )
    f = facts(changes=[pause, resume], current={"enabled": True, "paused_until": minutes(15)})
    assert outcome(minutes(10), f).outcome is Outcome.PAUSED
    assert "indefinitely" in outcome(minutes(10), f).detail
    assert outcome(minutes(20), f).outcome is not Outcome.PAUSED


def test_a_fire_time_while_disabled_says_who_disabled_it_and_when():
    off = ChangeFact(minutes(5), "bob", "admin", {"enabled": [True, False]})
    on = ChangeFact(minutes(25), "bob", "admin", {"enabled": [False, True]})
    f = facts(changes=[off, on], runs=[run(5, minutes(30))])
    verdict = outcome(minutes(20), f)
    assert verdict.outcome is Outcome.DISABLED
    assert verdict.extra == {"by": "bob", "disabled_at": minutes(5).isoformat()}
    assert outcome(minutes(30), f).outcome is Outcome.RAN


def test_a_disabled_fire_time_caught_up_on_re_enabling_still_reads_disabled():
    off = ChangeFact(minutes(5), "bob", "admin", {"enabled": [True, False]})
    on = ChangeFact(minutes(25), "bob", "admin", {"enabled": [False, True]})
    catch = run(6, minutes(20), reason="catch_up", created_at=minutes(25))
    verdict = outcome(minutes(10), facts(changes=[off, on], runs=[catch]))
    assert (verdict.outcome, verdict.run_id) == (Outcome.DISABLED, 6)
    assert "caught up by run #6" in verdict.detail


def test_a_schedule_disabled_before_its_recorded_history_reads_disabled_from_the_first_edit():
    on = ChangeFact(minutes(25), "bob", "admin", {"enabled": [False, True]})
    assert outcome(minutes(20), facts(changes=[on])).outcome is Outcome.DISABLED


def test_a_fire_time_before_the_schedule_existed_says_so():
    assert outcome(minutes(-10), facts()).outcome is Outcome.BEFORE_CREATED


def test_a_fire_time_while_no_daemon_was_up_and_none_since_had_no_scheduler():
    f = facts(daemons=[Span(T0 - timedelta(hours=1), minutes(5))], runs=[run(1, minutes(0))])
    assert outcome(minutes(20), f).outcome is Outcome.NO_SCHEDULER


def test_a_fire_time_just_now_without_a_run_is_due():
    assert outcome(minutes(59), facts()).outcome is Outcome.DUE


def test_a_fire_time_with_a_daemon_up_and_no_run_is_unexplained():
    assert outcome(minutes(10), facts()).outcome is Outcome.UNEXPLAINED


def test_fire_times_after_now_are_not_judged():
    assert explain([minutes(10), NOW + timedelta(minutes=1)], facts(), NOW)[-1].fire_time == (
        minutes(10)
    )


def test_manual_runs_neither_count_as_a_fire_time_run_nor_as_catch_up():
    manual = run(3, minutes(10), reason="manual")
    assert outcome(minutes(10), facts(runs=[manual])).outcome is Outcome.UNEXPLAINED


def test_a_verdict_reads_as_json_ready_values():
    data = outcome(minutes(10), facts(runs=[run(7, minutes(10))])).as_dict()
    assert data == {
        "fire_time": minutes(10).isoformat(),
        "outcome": "ran",
        "detail": "run #7: succeeded",
        "run": 7,
        "status": "succeeded",
    }


def test_a_pause_reason_that_looks_like_a_date_stays_text():
    pause = ChangeFact(
        minutes(5),
        "a",
        "cli",
        {"paused_until": [None, minutes(25).isoformat()], "pause_reason": ["", "2026-11-24"]},
    )
    assert outcome(minutes(10), facts(changes=[pause])).extra["reason"] == "2026-11-24"
