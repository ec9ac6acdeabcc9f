"""History at scale: seed many ``Run`` rows in bulk, then time the pages that read them.

Server time is measured in this process with Django's test client (no network, no
browser): the view, its queries and the template, as a web worker spends them. Pruning is
measured the way a daemon meets it: one thread prunes while another claims a fire time
every few milliseconds; the figure is how much longer a claim took than without pruning.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, connections, transaction
from django.db.models import Field
from django.utils import timezone

from scheduler.models import Reason, Run, Schedule, Status

SCHEDULES = 50
SPACING = timedelta(seconds=60)  # between two runs of one schedule
BATCH = 5000  # rows per INSERT batch
FAILED_EVERY = 50  # one run in 50 failed
SKIPPED_EVERY = 97


def seed(total: int, now: datetime | None = None, *, analyze: bool = True) -> list[int]:
    """Create ``SCHEDULES`` schedules and ``total`` ended runs of theirs; return their ids.

    Rows go in with ``executemany`` over batches of ``BATCH``, each field prepared once by
    Django (so fields added later with a default are filled), without model instances.
    """
    now = now or timezone.now()
    schedules = Schedule.objects.bulk_create(
        Schedule(name=f"history-{index:02d}", command="noop", interval=60)
        for index in range(SCHEDULES)
    )
    ids = [schedule.pk for schedule in schedules]
    fields: list[Field[Any, Any]] = [
        field
        for field in Run._meta.concrete_fields
        if isinstance(field, Field) and not field.primary_key
    ]
    template = Run(command="noop", reason=Reason.SCHEDULED, executor="thread", host="bench")
    fixed = {
        field.attname: field.get_db_prep_save(getattr(template, field.attname), connection)
        for field in fields
    }
    table = connection.ops.quote_name(Run._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    prep = {field.attname: field.get_db_prep_save for field in fields}

    def rows() -> Iterator[list[Any]]:
        per_schedule = -(-total // SCHEDULES)
        made = 0
        for step in range(per_schedule):
            for position, schedule_id in enumerate(ids):
                if made == total:
                    return
                made += 1
                number = step * SCHEDULES + position
                due = now - SPACING * (step + 1) + timedelta(seconds=position)
                started: datetime | None = due + timedelta(milliseconds=3)
                finished: datetime | None = due + timedelta(milliseconds=43 + number % 900)
                status, err = Status.SUCCEEDED, ""
                code: int | None = 0
                if number % FAILED_EVERY == 0:
                    status, code, err = Status.FAILED, 1, f"Traceback: error {number}\n"
                elif number % SKIPPED_EVERY == 0:
                    status, code, started, finished = Status.SKIPPED, None, None, None
                values = dict(
                    fixed,
                    schedule_id=schedule_id,
                    status=status,
                    scheduled_for=prep["scheduled_for"](due, connection),
                    started_at=prep["started_at"](started, connection),
                    finished_at=prep["finished_at"](finished, connection),
                    exit_code=code,
                    stdout=f"processed {number} items\n",
                    stderr=err,
                )
                yield [values[field.attname] for field in fields]

    batch: list[list[Any]] = []
    with connection.cursor() as cursor:
        for row in rows():
            batch.append(row)
            if len(batch) == BATCH:
                with transaction.atomic():
                    cursor.executemany(sql, batch)
                batch = []
        if batch:
            with transaction.atomic():
                cursor.executemany(sql, batch)
    if not analyze:
        return ids
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {table}")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return ids


def pages(schedule_ids: list[int]) -> dict[str, str]:
    """The pages to time, by label: admin's lists, the timeline, a run, health, metrics."""
    run = Run.objects.filter(schedule_id=schedule_ids[7]).order_by("-scheduled_for").first()
    runs = "/admin/scheduler/run/"
    return {
        "run list": runs,
        "run list, failed": f"{runs}?status__exact=failed",
        "run list, one schedule": f"{runs}?schedule__id__exact={schedule_ids[7]}",
        "run list, search": f"{runs}?q=history-07",
        "schedule list": "/admin/scheduler/schedule/",
        "timeline (24 h)": f"{runs}timeline/",
        "run page": f"{runs}{run.pk if run else 0}/change/",
        "health": "/scheduler/health/",
        "metrics": "/scheduler/metrics",
    }


def time_pages(schedule_ids: list[int], repeat: int) -> dict[str, dict[str, float]]:
    """Median and maximum server milliseconds of each page over ``repeat`` requests."""
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    figures = {}
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        for label, url in pages(schedule_ids).items():
            client.get(url)  # warm: templates, the page cache
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - start) * 1000)
                if response.status_code not in (200, 503):
                    raise RuntimeError(f"{url} answered {response.status_code}")
            figures[label] = {"median": statistics.median(times), "max": max(times)}
    return figures


def prune_delay(schedule_id: int, keep_days: int = 1, seconds: float = 5.0) -> dict[str, Any]:
    """How much pruning delays a claim: claim every 20 ms while a thread prunes.

    Returns the claims' milliseconds without pruning and during it, and rows pruned.
    """
    from scheduler.owners import Owner
    from scheduler.retention import prune_runs
    from scheduler.sqlite import use_immediate_transactions

    use_immediate_transactions()  # as in the daemon, whose claims and prunings these are
    owner = Owner.this_process()
    base = timezone.now().replace(microsecond=0) + timedelta(days=1)

    def claims(until: float, offset: int) -> list[float]:
        took = []
        index = 0
        while time.monotonic() < until:
            fire = base + timedelta(seconds=offset + index)
            start = time.perf_counter()
            Run.claim(schedule_id, fire, Reason.SCHEDULED, owner=owner)
            took.append((time.perf_counter() - start) * 1000)
            index += 1
            time.sleep(0.02)
        return took

    quiet = claims(time.monotonic() + 1.0, 0)
    pruned: list[int] = []

    def prune() -> None:
        try:
            pruned.append(prune_runs(timezone.now()))
        finally:
            connections.close_all()

    Schedule.objects.update(keep_days=keep_days)
    thread = threading.Thread(target=prune)
    began = time.monotonic()
    thread.start()
    busy = claims(time.monotonic() + seconds, 100_000)
    thread.join()
    return {
        "quiet_ms": {"median": statistics.median(quiet), "max": max(quiet)},
        "pruning_ms": {"median": statistics.median(busy), "max": max(busy)},
        "pruned": pruned[0] if pruned else 0,
        "prune_s": time.monotonic() - began,
    }


def clear() -> None:
    """Delete every run in one statement (no per-row collection of a million rows)."""
    from scheduler.models import Alert

    Alert.objects.update(run=None)
    Run.objects.all()._raw_delete(Run.objects.db)


def measure(total: int, repeat: int = 5) -> dict[str, Any]:
    """Seed ``total`` runs, time the pages, then time claims while pruning."""
    began = time.perf_counter()
    ids = seed(total)
    seeded = time.perf_counter() - began
    result: dict[str, Any] = {"rows": Run.objects.count(), "seed_s": seeded}
    result["pages_ms"] = time_pages(ids, repeat)
    result["prune"] = prune_delay(ids[0])
    return result
