"""Placeholders in a schedule's arguments, expanded for each run.

An argument such as ``--date={previous_fire:%Y-%m-%d}`` becomes ``--date=2026-11-30`` in
the run for the fire time of 1 December 00:10 of a daily schedule. ``{scheduled_for}`` is
the fire time the run is for; ``{previous_fire}`` is the schedule's fire time before that
one, the start of the period a daily job covers. Both are shown in the schedule's
timezone: after a colon comes a strftime format, without one the time is ISO 8601.
``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from string import Formatter

NAMES = ("scheduled_for", "previous_fire")

_SAMPLE = datetime(2026, 1, 31, 23, 59, 58, tzinfo=UTC)


class PlaceholderError(ValueError):
    """An argument whose placeholders cannot be expanded."""


def _pieces(arg: str) -> list[tuple[str, str | None, str]]:
    """Split ``arg`` into (literal text, placeholder name or None, format) pieces."""
    try:
        parsed = list(Formatter().parse(arg))
    except ValueError as exc:
        raise PlaceholderError(f"{arg!r}: {exc}; write {{{{ and }}}} for literal braces.") from None
    pieces: list[tuple[str, str | None, str]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            pieces.append((literal, None, ""))
            continue
        if name not in NAMES:
            shown = f"{{{name}}}" if name else "{}"
            raise PlaceholderError(
                f"{arg!r}: unknown placeholder {shown}; use {{scheduled_for}} or "
                f"{{previous_fire}}, or write {{{{ and }}}} for literal braces."
            )
        if conversion:
            raise PlaceholderError(f"{arg!r}: {{{name}!{conversion}}} is not supported.")
        if spec and ("{" in spec or "}" in spec or "%" not in spec):
            raise PlaceholderError(
                f"{arg!r}: {{{name}:{spec}}} is not a strftime format such as {{{name}:%Y-%m-%d}}."
            )
        if spec:
            try:
                _SAMPLE.strftime(spec)
            except ValueError as exc:
                raise PlaceholderError(f"{arg!r}: bad format {spec!r}: {exc}.") from None
        pieces.append((literal, name, spec or ""))
    return pieces


def check(args: list[str]) -> None:
    """Raise :class:`PlaceholderError` for the first argument that cannot be expanded."""
    for arg in args:
        _pieces(arg)


def uses_placeholders(args: list[str]) -> bool:
    """Tell whether any argument holds a placeholder (or an escaped brace)."""
    return any("{" in arg or "}" in arg for arg in args)


def expand(
    args: list[str],
    *,
    scheduled_for: datetime,
    previous_fire: datetime | None,
    zone: tzinfo,
) -> list[str]:
    """Return ``args`` with each placeholder replaced by its time in ``zone``.

    ``previous_fire`` is None only for a schedule with no earlier fire time; its
    placeholder then expands to an empty string.
    """
    values = {"scheduled_for": scheduled_for, "previous_fire": previous_fire}
    expanded = []
    for arg in args:
        parts = []
        for literal, name, spec in _pieces(arg):
            parts.append(literal)
            if name is None:
                continue
            moment = values[name]
            if moment is None:
                continue
            local = moment.astimezone(zone)
            parts.append(local.strftime(spec) if spec else local.isoformat())
        expanded.append("".join(parts))
    return expanded
