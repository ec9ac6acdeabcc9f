"""Is a scheduler alive? One answer for the health command and the health URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .conf import conf
from .models import Heartbeat, Run

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django_stubs_ext import WithAnnotations

    from .models import Age


@dataclass(frozen=True)
class Health:
    status: str  # "ok": a fresh heartbeat; "stale": daemons, none fresh; "none": no daemon
    daemons: list[dict[str, Any]] = field(default_factory=list)
    queued: int = 0
    oldest_queued_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "daemons": self.daemons,
            "queued": self.queued,
            "oldest_queued_seconds": self.oldest_queued_seconds,
        }


def check_health(now: datetime, *, host: str | None = None) -> Health:
    """Judge the daemons (those on ``host`` only, if given) by their heartbeats."""
    stale_after = timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
    # Spelled here too: the plugin resolves an annotated model only where it is written.
    beats: QuerySet[WithAnnotations[Heartbeat, Age]] = Heartbeat.objects.with_age().filter(
        stopped_at__isnull=True, kind="daemon"
    )
    if host is not None:
        beats = beats.filter(host=host)
    daemons = [
        {
            "host": beat.host,
            "pid": beat.pid,
            "started_at": beat.started_at.isoformat(),
            "last_beat": beat.last_beat.isoformat(),
            # By the database's clock, which stamped the beats (hosts' clocks may differ).
            "seconds_since_beat": round(beat.age.total_seconds(), 1),
            "fresh": beat.is_fresh(stale_after),
        }
        for beat in beats.order_by("-last_beat")[:50]
    ]
    if any(daemon["fresh"] for daemon in daemons):
        status = "ok"
    else:
        status = "stale" if daemons else "none"
    count, oldest = Run.objects.queue_summary()
    return Health(
        status=status,
        daemons=daemons,
        queued=count,
        oldest_queued_seconds=round((now - oldest).total_seconds(), 1) if oldest else None,
    )
