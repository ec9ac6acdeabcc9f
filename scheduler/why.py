"""Why each nominal fire time of a schedule did or did not run.

:func:`explain` is pure: given the schedule's fire times in a range, its runs, its edit
history (``ScheduleChange`` rows), the daemons' up-time spans and ``now``, it returns one
:class:`Verdict` per fire time. :func:`facts_for` reads those rows from the database.
A field's value at a moment is read from the edit history: the new value of the last
change before it, else the old value of the first change after it, else the value now.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# How many runs started before a skip are searched for the one still going.
BLOCKER_LOOKBACK = 50

# A fire time this recent without a run may simply not have been claimed yet.
DUE_GRACE = timedelta(seconds=60)


class Outcome(enum.Enum):
    RAN = "ran"
    SKIPPED = "skipped"
    CAUGHT_UP = "caught up"
    NOT_CAUGHT_UP = "not caught up"
    PAUSED = "paused"
    DISABLED = "disabled"
    BEFORE_CREATED = "before the schedule existed"
    NO_SCHEDULER = "no scheduler was running"
    DUE = "due"
    UNEXPLAINED = "not run"


@dataclass(frozen=True)
class RunFact:
    id: int
    scheduled_for: datetime
    reason: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ChangeFact:
    at: datetime
    by: str
    source: str
    # {field: [old, new]}; datetimes as ISO 8601 strings, as ``ScheduleChange`` keeps them.
    changes: Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class Span:
    """A daemon's up-time: from ``start`` to ``end`` (None: up now)."""

    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Facts:
    created_at: datetime
    catch_up: bool
    catch_up_window: int | None
    # The schedule's fields now: what holds where the history says nothing.
    current: Mapping[str, Any]
    runs: Sequence[RunFact] = ()
    changes: Sequence[ChangeFact] = ()
    daemons: Sequence[Span] = ()


@dataclass(frozen=True)
class Verdict:
    fire_time: datetime
    outcome: Outcome
    detail: str
    run_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the verdict as JSON-ready values."""
        return {
            "fire_time": self.fire_time.isoformat(),
            "outcome": self.outcome.value,
            "detail": self.detail,
            "run": self.run_id,
            **self.extra,
        }


# The recorded fields holding datetimes (kept as ISO 8601 strings in the history).
DATETIME_FIELDS = frozenset({"paused_until", "created_at"})


def _parse(name: str, value: Any) -> Any:
    if name in DATETIME_FIELDS and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


class _History:
    def __init__(self, changes: Iterable[ChangeFact], current: Mapping[str, Any]) -> None:
        self.changes = sorted(changes, key=lambda change: change.at)
        self.current = current

    def value_at(self, name: str, at: datetime) -> tuple[Any, ChangeFact | None]:
        """Return the field's value at ``at`` and the change that set it (if recorded)."""
        setting: ChangeFact | None = None
        for change in self.changes:
            if name not in change.changes:
                continue
            if change.at <= at:
                setting = change
            else:
                if setting is None:
                    return _parse(name, change.changes[name][0]), None
                break
        if setting is not None:
            return _parse(name, setting.changes[name][1]), setting
        return self.current.get(name), None


def explain(fire_times: Iterable[datetime], facts: Facts, now: datetime) -> list[Verdict]:
    """Return the outcome of each fire time (ascending, at or before ``now``)."""
    history = _History(facts.changes, facts.current)
    runs = sorted(facts.runs, key=lambda run: (run.scheduled_for, run.id))
    claimed = [run for run in runs if run.reason != "manual"]
    by_fire = {run.scheduled_for: run for run in claimed}
    started = sorted(
        (run for run in runs if run.status != "skipped" and run.started_at is not None),
        key=_started,
    )
    verdicts = []
    for fire in sorted(fire_times):
        if fire > now:
            break
        verdicts.append(_verdict(fire, facts, history, started, claimed, by_fire, now))
    return verdicts


def _verdict(
    fire: datetime,
    facts: Facts,
    history: _History,
    started: Sequence[RunFact],
    claimed: Sequence[RunFact],
    by_fire: Mapping[datetime, RunFact],
    now: datetime,
) -> Verdict:
    own = by_fire.get(fire)
    if own is not None:
        return _ran(fire, own, started)
    if fire < facts.created_at:
        return Verdict(fire, Outcome.BEFORE_CREATED, f"created at {facts.created_at.isoformat()}")
    paused_until, pause = history.value_at("paused_until", fire)
    if isinstance(paused_until, datetime) and fire < paused_until:
        by = history.value_at("paused_by", fire)[0] or (pause.by if pause else "")
        reason = history.value_at("pause_reason", fire)[0] or ""
        until = "indefinitely" if paused_until.year >= 9999 else f"until {paused_until.isoformat()}"
        return Verdict(
            fire,
            Outcome.PAUSED,
            f"paused {until} by {by or 'unknown'}: {reason}",
            extra={"by": by, "reason": reason, "until": paused_until.isoformat()},
        )
    position = bisect.bisect_right(claimed, fire, key=lambda run: run.scheduled_for)
    later = claimed[position] if position < len(claimed) else None
    caught_up = later if later is not None and later.reason == "catch_up" else None
    enabled, disabling = history.value_at("enabled", fire)
    if enabled is False:
        who = (disabling.by or disabling.source) if disabling else "unknown"
        when = disabling.at.isoformat() if disabling else "before the recorded history"
        # Re-enabling catches up like a start does: say so, the disabling stays the reason.
        then = f"; caught up by run #{caught_up.id} when re-enabled" if caught_up else ""
        return Verdict(
            fire,
            Outcome.DISABLED,
            f"disabled by {who} at {when}{then}",
            caught_up.id if caught_up else None,
            {"by": who, "disabled_at": disabling.at.isoformat() if disabling else None},
        )
    if caught_up is not None:
        detail = f"coalesced into catch-up run #{caught_up.id}"
        return Verdict(fire, Outcome.CAUGHT_UP, detail, caught_up.id)
    up = any(_up_at(span, fire, now) for span in facts.daemons)
    came_back = up or any(_up_after(span, fire, now) for span in facts.daemons)
    down = "" if up else "; no scheduler was running then"
    if came_back or later is not None:
        if not facts.catch_up:
            return Verdict(fire, Outcome.NOT_CAUGHT_UP, "catch-up is off" + down)
        if facts.catch_up_window is not None and later is not None:
            return Verdict(
                fire,
                Outcome.NOT_CAUGHT_UP,
                f"outside the {facts.catch_up_window} s catch-up window" + down,
            )
    if not up:
        return Verdict(fire, Outcome.NO_SCHEDULER, "no scheduler was running, none caught it up")
    if now - fire <= DUE_GRACE:
        return Verdict(fire, Outcome.DUE, "due; not started yet")
    return Verdict(fire, Outcome.UNEXPLAINED, "a scheduler was running but recorded no run")


def _started(run: RunFact) -> datetime:
    assert run.started_at is not None
    return run.started_at


def _ran(fire: datetime, run: RunFact, started: Sequence[RunFact]) -> Verdict:
    if run.status == "skipped":
        # The latest run started before the skip that had not finished by then.
        position = bisect.bisect_right(started, run.created_at, key=_started)
        blocker = next(
            (
                other
                for other in reversed(started[max(0, position - BLOCKER_LOOKBACK) : position])
                if other.finished_at is None or other.finished_at >= run.created_at
            ),
            None,
        )
        going = f"run #{blocker.id} was still going" if blocker else "the previous run was going"
        return Verdict(
            fire,
            Outcome.SKIPPED,
            f"skipped (overlap): {going}",
            run.id,
            {"blocked_by": blocker.id if blocker else None},
        )
    if run.reason == "catch_up":
        return Verdict(fire, Outcome.CAUGHT_UP, f"run #{run.id} caught it up: {run.status}", run.id)
    detail = f"run #{run.id}: {run.status}"
    return Verdict(fire, Outcome.RAN, detail, run.id, {"status": run.status})


def _up_at(span: Span, at: datetime, now: datetime) -> bool:
    return span.start <= at <= (span.end or now)


def _up_after(span: Span, at: datetime, now: datetime) -> bool:
    return (span.end or now) > at
