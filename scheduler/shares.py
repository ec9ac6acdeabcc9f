"""How daemons sharing a database divide the schedules between them.

Each live daemon fires the schedules whose id, modulo the number of live daemons, is its
place among them (by heartbeat id). The division is only an economy: the unique fire-time
claim still decides which daemon runs a fire time, so two daemons owning a schedule
at once cost a lost claim, never a second run.

What must not happen is a schedule nobody owns while every daemon lives. A daemon counts
only once it fires (it has planned the schedules), and daemons learn of a change in who
lives at different moments, so after a change each keeps firing its previous share too,
for ``overlap`` seconds: longer than any live daemon takes to notice. A daemon that dies
leaves its schedules unowned until the others judge it dead; the daemon that gains a
schedule plans it again, and the catch-up rules decide what its missed fire times run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    """The schedules whose id modulo ``count`` is ``index``; ``Share()`` is all of them."""

    index: int = 0
    count: int = 1

    @property
    def everything(self) -> bool:
        """Return whether this is every schedule (a daemon alone)."""
        return self.count == 1

    def owns(self, schedule_id: int) -> bool:
        """Return whether the schedule ``schedule_id`` is in this share."""
        return schedule_id % self.count == self.index


EVERYTHING = Share()


def share_of(me: int, members: Iterable[int]) -> Share:
    """Return the share of the daemon whose heartbeat id is ``me`` among ``members``."""
    ordered = sorted({me, *members})
    return Share(ordered.index(me), len(ordered))


class Shares:
    """This daemon's current share, and the earlier ones it keeps for ``overlap`` seconds.

    Times are a monotonic clock's, passed in.
    """

    def __init__(self, overlap: float) -> None:
        self.overlap = overlap
        self.current = EVERYTHING
        self._previous: dict[Share, float] = {}  # share -> when it stops being held

    def update(self, share: Share, now: float) -> Share | None:
        """Make ``share`` the current one as of ``now``; return the one it replaced."""
        if share == self.current:
            return None
        before, self.current = self.current, share
        self._previous[before] = now + self.overlap
        self._previous.pop(share, None)
        return before

    def held(self, now: float) -> frozenset[Share]:
        """Return the shares held at ``now``: just ``EVERYTHING`` if that is among them."""
        self._previous = {share: until for share, until in self._previous.items() if until > now}
        held = frozenset({self.current, *self._previous})
        return frozenset({EVERYTHING}) if EVERYTHING in held else held
