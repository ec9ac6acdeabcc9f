"""Database outages the daemons rode out, kept so that every daemon's metrics count them."""

from __future__ import annotations

from datetime import datetime

from .models import DatabaseOutage
from .owners import Owner


def record_outage(owner: Owner, started_at: datetime, ended_at: datetime) -> DatabaseOutage:
    """Record that ``owner`` could not reach the database from ``started_at`` to ``ended_at``."""
    return DatabaseOutage.objects.create(
        host=owner.host, pid=owner.pid, started_at=started_at, ended_at=ended_at
    )
