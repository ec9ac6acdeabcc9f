"""Which run owners are gone, so their ``running`` runs can be resolved by a live daemon.

An owner (a daemon, or a terminal or task worker running one run) is gone when its
heartbeat is stale or marked stopped, or, on this host, when its process no longer
exists (a ``kill -9`` seen at once instead of after the timeout) or its pid is now this
very process (a container restarted with the same pid). Staleness is judged by the
database's clock, which stamped the beats too: hosts' clocks may disagree.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Q
from django.db.models.functions import Now

from .conf import conf
from .models import Heartbeat, Run, Status
from .owners import Owner

ONE_RUN_KINDS = ("cli", "worker")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_heartbeats(
    *,
    stale_after: timedelta,
    me: Heartbeat,
    is_alive: Callable[[int], bool] = pid_alive,
    judge_stale: bool = True,
) -> list[int]:
    """Heartbeat ids of gone owners (daemons, terminals, workers) of ``running`` runs.

    ``judge_stale=False`` holds back the stale-heartbeat rule: just after a database
    outage every other daemon's heartbeat looks stale, though they were only cut off too.
    """
    owners = Heartbeat.objects.filter(
        pk__in=Run.objects.running().exclude(heartbeat=me).owner_heartbeat_ids()
    )
    stale = set(owners.stale(stale_after).values_list("pk", flat=True)) if judge_stale else set()
    return [
        heartbeat.pk
        for heartbeat in owners
        if _gone_here(heartbeat, me, is_alive) or heartbeat.pk in stale
    ]


def _gone_here(heartbeat: Heartbeat, me: Heartbeat, is_alive: Callable[[int], bool]) -> bool:
    """Return whether another ``heartbeat`` was beaten by a process of this host (and pid
    namespace) that is gone, or by an earlier life of this very pid."""
    same_pids = heartbeat.host == me.host and heartbeat.pid_namespace == me.pid_namespace
    return same_pids and (heartbeat.pid == me.pid or not is_alive(heartbeat.pid))


def live_daemons(
    *, stale_after: timedelta, me: Heartbeat, is_alive: Callable[[int], bool] = pid_alive
) -> list[int]:
    """Heartbeat ids of the daemons that beat and fire, ``me`` included: those dividing the
    schedules.

    A daemon on this host whose process is gone counts as dead at once, as in
    :func:`dead_heartbeats`.
    """
    firing = (
        Heartbeat.objects.fresh(stale_after)
        .filter(kind="daemon", firing_since__isnull=False)
        .exclude(pk=me.pk)
        .only("host", "pid_namespace", "pid")
    )
    others = {heartbeat.pk for heartbeat in firing if not _gone_here(heartbeat, me, is_alive)}
    return sorted({me.pk, *others})


def prune_heartbeats(*, keep_for: timedelta) -> int:
    """Forget daemons gone for longer than ``keep_for`` that own no running run.

    The heartbeat of a terminal run or a worker's run lives for that one run: once it
    stopped it is dropped straight away (the run keeps its host and pid), or a busy
    worker would add a row to admin's list for every run.
    """
    old = Heartbeat.objects.filter(
        Q(last_beat__lt=Now() - keep_for) | Q(stopped_at__isnull=False, kind__in=ONE_RUN_KINDS)
    ).exclude(runs__status=Status.RUNNING)
    return old.delete()[0]


@contextmanager
def heartbeat_owner(kind: str) -> Iterator[Owner]:
    """A heartbeat for a run this process executes outside a daemon (terminal, task worker).

    While it beats, daemons know the run is alive; once it stops (the process died) they
    resolve the run as ``interrupted``.
    """
    me = Owner.this_process()
    heartbeat = Heartbeat.start(host=me.host, pid=me.pid, kind=kind)
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(conf.HEARTBEAT_INTERVAL):
                try:
                    heartbeat.beat()
                except DatabaseError:
                    close_old_connections()  # beat again next time round
        finally:
            connection.close()  # this thread's own; a worker starts one such thread a run

    beating = threading.Thread(target=beat, daemon=True, name="scheduler-heartbeat")
    beating.start()
    try:
        yield Owner(me.host, me.pid, heartbeat.pk)
    finally:
        stop.set()
        beating.join()
        heartbeat.stop()
