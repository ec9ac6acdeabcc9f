"""The timeline's zoom levels, axis ticks and the merging of marks too close to tell apart.

Pure arithmetic on numbers and timedeltas, kept apart from the SVG so it can be tested
on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Zoom:
    """How far the timeline looks back (and ahead), and how its axis is marked."""

    key: str
    span: timedelta
    tick_minutes: int
    label_minutes: int

    @property
    def label(self) -> str:
        """The span in words, for the page's title."""
        hours = self.span.total_seconds() / 3600
        if hours % 24 == 0 and hours > 24:
            return f"{hours / 24:g} days"
        return f"{hours:g} hour" + ("" if hours == 1 else "s")


ZOOMS = (
    Zoom("1h", timedelta(hours=1), tick_minutes=5, label_minutes=15),
    Zoom("6h", timedelta(hours=6), tick_minutes=30, label_minutes=60),
    Zoom("24h", timedelta(hours=24), tick_minutes=60, label_minutes=180),
    Zoom("7d", timedelta(days=7), tick_minutes=360, label_minutes=1440),
)
DEFAULT_ZOOM = ZOOMS[2]


def parse_zoom(value: str | None) -> Zoom:
    """Return the zoom named ``value`` (``"1h"``, ``"6h"``, ``"24h"``, ``"7d"``), or the default.

    Raises ``ValueError`` naming the choices for any other value.
    """
    if not value:
        return DEFAULT_ZOOM
    for zoom in ZOOMS:
        if zoom.key == value:
            return zoom
    choices = ", ".join(zoom.key for zoom in ZOOMS)
    raise ValueError(f"Unknown timeline span {value!r}; choose one of {choices}.")


def zoom_for_window(window: timedelta) -> Zoom:
    """The smallest zoom whose past and future together cover ``window``: its axis fits it."""
    for zoom in ZOOMS:
        if 2 * zoom.span >= window:
            return zoom
    return ZOOMS[-1]


@dataclass
class Band(Generic[T]):
    """Items next to each other on screen and of one kind, drawn as one mark."""

    key: str
    left: float
    right: float
    items: list[T] = field(default_factory=list)


def merge_adjacent(marks: Iterable[tuple[float, float, str, T]], gap: float) -> list[Band[T]]:
    """Merge ``(left, right, key, item)`` marks, sorted by ``left``, into bands.

    A mark joins the band before it when it has the same key and starts no more than
    ``gap`` pixels after the band's right end; any other mark starts a new band.
    """
    bands: list[Band[T]] = []
    for left, right, key, item in marks:
        last = bands[-1] if bands else None
        if last is not None and last.key == key and left <= last.right + gap:
            last.right = max(last.right, right)
            last.items.append(item)
        else:
            bands.append(Band(key, left, right, [item]))
    return bands


def covers_lower(bands: Sequence[Band[T]], rank: Callable[[str], int]) -> list[bool]:
    """For each band (sorted by ``left``), whether it overlaps a band of lower ``rank``.

    Those are drawn over another status's band; the timeline draws them half height, so
    a failure among thousands of successes shows without hiding the successes.
    """
    result = [False] * len(bands)
    active: list[int] = []
    for index, band in enumerate(bands):
        active = [other for other in active if bands[other].right > band.left]
        for other in active:
            if bands[other].key == band.key:
                continue
            if rank(band.key) > rank(bands[other].key):
                result[index] = True
            elif rank(bands[other].key) > rank(band.key):
                result[other] = True
        active.append(index)
    return result
