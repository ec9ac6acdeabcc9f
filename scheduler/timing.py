"""Schedule arithmetic: when does a schedule fire, and what did it miss.

Pure functions of a :class:`Timing` and the instants they are asked about, so that the
admin's "next runs", the daemon's trigger and catch-up all give one answer and tests can
pass any ``now`` they like.

Cron expressions are evaluated by ``cronsim``, which follows Debian cron where APScheduler's
``CronTrigger.from_crontab`` does not: 0 and 7 are both Sunday, a restricted day-of-month
and day-of-week are OR-ed (unless either starts with ``*``), and across daylight-saving
changes a fixed-time job in a skipped hour runs when the clock jumps, a fixed-time job in
a repeated hour runs once, and a wildcard-hour job follows real time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# cronsim also understands L, W, # and ? (Quartz-style); Debian cron does not.
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/-]+$")
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_NAMES = {
    "month": set("jan feb mar apr may jun jul aug sep oct nov dec".split()),
    "day of week": set("sun mon tue wed thu fri sat".split()),
}

# The longest interval: longer cadences are cron's (@yearly); bounded so that fire time
# arithmetic stays far from the ends of ``datetime``.
MAX_INTERVAL = 365 * 24 * 3600

# How many missed fire times catch-up counts one by one before it says "more than".
MISSED_COUNT_LIMIT = 100_000


class TimingError(ValueError):
    """A cron expression, interval or timezone that cannot be scheduled."""


@functools.lru_cache(maxsize=4096)
def expand_cron(expression: str) -> str:
    """Return the five-field form of ``expression``, or raise :class:`TimingError`.

    Cached: many schedules share an expression, and a daemon planning 10,000 of them
    would otherwise parse each one a second time just to check it.
    """
    text = " ".join(expression.split())
    if text.startswith("@"):
        try:
            return ALIASES[text.lower()]
        except KeyError:
            known = " ".join(ALIASES)
            raise TimingError(f"Unknown alias {text!r}; use one of {known}.") from None
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise TimingError(
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}."
        )
    for name, field in zip(_FIELD_NAMES, fields, strict=True):
        words = {word.lower() for word in re.findall(r"[A-Za-z]+", field)}
        if not _CRON_FIELD.match(field) or not words <= _NAMES.get(name, set()):
            raise TimingError(f"Bad {name} field {field!r}.")
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise TimingError(f"{exc} in {text!r}.") from None
    return text


# Names in the zone database that mean each host's own setting (or none), so two daemons
# could compute different fire times for one schedule.
HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def get_zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name``, or raise :class:`TimingError`."""
    if name in HOST_DEPENDENT_ZONES:
        raise TimingError(
            f"Timezone {name!r} depends on each host's settings; use an IANA name such as "
            f"Europe/Berlin so every scheduler computes the same fire times."
        )
    if not name or name not in _zone_names():
        raise TimingError(f"Unknown timezone {name!r}; use an IANA name such as Europe/Berlin.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimingError(f"Unknown timezone {name!r}.") from None


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = (frozenset(available_timezones()) | {"UTC"}) - HOST_DEPENDENT_ZONES
    return _ZONES


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: a cron expression in a timezone, or every ``interval`` seconds.

    Interval schedules count from ``anchor`` (the schedule's creation), so fire times stay
    on one grid however long each run takes.
    """

    cron: str | None = None
    interval: int | None = None
    timezone: str = "UTC"
    anchor: datetime | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise TimingError("Give exactly one of a cron expression and an interval.")
        if self.interval is not None:
            if self.interval <= 0:
                raise TimingError("The interval must be a positive number of seconds.")
            if self.interval > MAX_INTERVAL:
                raise TimingError(
                    f"The interval must be at most {MAX_INTERVAL} seconds (365 days); "
                    f"use a cron expression such as @yearly for longer."
                )
            if self.anchor is None or self.anchor.tzinfo is None:
                raise TimingError("An interval needs an aware anchor datetime.")
        if self.cron is not None:
            object.__setattr__(self, "cron", expand_cron(self.cron))
        get_zone(self.timezone)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after the aware ``after``, ascending, in UTC.

        Ends where the next fire time would not fit in a ``datetime`` (past year 9999).
        """
        _require_aware(after)
        fires = (
            self._interval_fires(after) if self.interval is not None else self._cron_fires(after)
        )
        latest = after
        try:
            for fire in fires:
                # cronsim walks a fixed-time job in wall-clock time: started in the second
                # pass of a repeated hour it offers that hour's first pass again, and jobs
                # moved out of a skipped hour meet at the jump. Each fire time once, ahead.
                if fire > latest:
                    latest = fire
                    yield fire
        except OverflowError:
            return

    def _interval_fires(self, after: datetime) -> Iterator[datetime]:
        assert self.anchor is not None and self.interval is not None
        step = timedelta(seconds=self.interval)
        elapsed = (after - self.anchor) // step
        current = self.anchor + step * max(elapsed + 1, 1)
        while True:
            yield current.astimezone(UTC)
            current += step

    def _cron_fires(self, after: datetime) -> Iterator[datetime]:
        assert self.cron is not None
        try:
            if self._fixed_time:
                local = after.astimezone(get_zone(self.timezone))
                for fire in CronSim(self.cron, local):
                    yield fire.astimezone(UTC)
            else:
                yield from self._real_time_fires(after)
        except ValueError:
            # cronsim builds dates past year 9999 with replace(), which says ValueError.
            raise OverflowError("fire time out of range") from None

    @property
    def _fixed_time(self) -> bool:
        """Whether cronsim applies Debian cron's rules for fixed-time jobs to this one."""
        assert self.cron is not None
        minute, hour = self.cron.split(" ")[:2]
        return not minute.startswith("*") and not hour.startswith("*")

    def _real_time_fires(self, after: datetime) -> Iterator[datetime]:
        """Each real instant after ``after`` whose wall-clock time matches the expression.

        cronsim walks such expressions in aware local time, which can loop back into the
        first pass of a repeated hour for ever; here it walks wall-clock time one UTC
        offset at a time instead, starting again where the offset changes.
        """
        assert self.cron is not None
        zone = get_zone(self.timezone)
        cursor = after.astimezone(UTC)
        offset = _offset(zone, cursor)
        while True:
            for wall in CronSim(self.cron, (cursor + offset).replace(tzinfo=None)):
                fire = wall.replace(tzinfo=UTC) - offset
                change = _offset_change(zone, cursor, fire, offset)
                if change is None:
                    yield fire
                    cursor = fire
                    continue
                cursor = change - timedelta(microseconds=1)
                offset = _offset(zone, change)
                break
            else:
                return

    def next_fire_times(self, after: datetime, count: int) -> list[datetime]:
        return list(islice(self.iter_after(after), count))

    def next_fire_time(self, after: datetime) -> datetime | None:
        return next(self.iter_after(after), None)

    def latest_at_or_before(self, now: datetime, since: datetime) -> datetime | None:
        """The last fire time in ``(since, now]``: the one catch-up runs for."""
        _require_aware(now)
        _require_aware(since)
        if self.interval is not None:
            assert self.anchor is not None
            step = timedelta(seconds=self.interval)
            periods = (now - self.anchor) // step
            if periods < 1:
                return None
            latest = self.anchor + step * periods
            return latest.astimezone(UTC) if latest > since else None
        hint = self._reverse_candidate(now)
        if hint is not None and hint > since:
            found = self._last_fire(hint, now)
            if found is not None:
                return found
        # The hint lies after the last fire time (one moved by a daylight-saving change).
        return self._last_fire(since, now)

    def _last_fire(self, since: datetime, now: datetime) -> datetime | None:
        last: datetime | None = None
        for fire in self.iter_after(since):
            if fire > now:
                break
            last = fire
        return last

    def previous_fire_time(self, before: datetime) -> datetime | None:
        """Return the last fire time strictly before ``before``.

        For an interval this is the grid point before it even when that lies before the
        anchor, so the first run of an interval schedule still covers a whole period.
        """
        _require_aware(before)
        if self.interval is not None:
            assert self.anchor is not None
            step = timedelta(seconds=self.interval)
            periods = (before - self.anchor - timedelta(microseconds=1)) // step
            return (self.anchor + step * periods).astimezone(UTC)
        earliest = datetime(1, 1, 2, tzinfo=UTC)
        return self.latest_at_or_before(before - timedelta(microseconds=1), earliest)

    def count_between(self, since: datetime, now: datetime) -> int:
        """How many fire times fall in ``(since, now]``, up to ``MISSED_COUNT_LIMIT``."""
        count = 0
        for fire in self.iter_after(since):
            if fire > now or count >= MISSED_COUNT_LIMIT:
                break
            count += 1
        return count

    def _reverse_candidate(self, now: datetime) -> datetime | None:
        """A fire time at or before ``now`` close to the last one, found by searching back.

        cronsim's backward search skips a fixed-time job that the forward rule moves out
        of a skipped hour, so the caller walks forward from here to the true last one.
        """
        assert self.cron is not None
        # Fire times fall on whole seconds; cronsim steps back one second before searching.
        # Step forward in UTC: in wall-clock time the last second before a fall-back
        # would step into the repeated hour's second pass, an hour later.
        probe = now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        zone = get_zone(self.timezone)
        try:
            if self._fixed_time:
                found = next(CronSim(self.cron, probe.astimezone(zone), reverse=True))
            else:
                # In wall-clock time at now's offset; the caller checks the result.
                offset = _offset(zone, probe)
                wall = (probe + offset).replace(tzinfo=None)
                found = next(CronSim(self.cron, wall, reverse=True)).replace(tzinfo=UTC) - offset
        except (StopIteration, OverflowError, ValueError):
            return None
        found = found.astimezone(UTC)
        if found > now:
            return None
        # Step back one more second so the forward walk re-yields ``found`` itself.
        return found - timedelta(seconds=1)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _offset_change(
    zone: ZoneInfo, start: datetime, end: datetime, offset: timedelta
) -> datetime | None:
    """The first instant in ``(start, end]`` whose UTC offset is not ``offset``, if any.

    Looks a day at a time (zones change offset months apart), then bisects.
    """
    good = start
    while good < end:
        probe = min(good + timedelta(days=1), end)
        if _offset(zone, probe) == offset:
            good = probe
            continue
        bad = probe
        while bad - good > timedelta(microseconds=1):
            middle = good + (bad - good) / 2
            if _offset(zone, middle) == offset:
                good = middle
            else:
                bad = middle
        return bad
    return None


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value!r} must be timezone-aware")
