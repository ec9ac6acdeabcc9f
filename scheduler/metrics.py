"""Prometheus metrics, computed from the database at scrape time.

Every figure is read from the tables all daemons and workers write, so any process serving
``/scheduler/metrics`` reports the same numbers however many share the database. Each is
one aggregate query: the histograms are bucket counts computed in SQL over the runs of the
last :data:`WINDOW`, not runs loaded into memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from .conf import conf
from .models import Alert, DatabaseOutage, Heartbeat, Run, Schedule, Status
from .span import SecondsBetween
from .span import histogram as span_histogram

# The histograms cover the runs that ended (duration) or started (lateness) this recently.
WINDOW = timedelta(hours=24)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600)
LATENESS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)

SCHEDULE = Coalesce(F("schedule__name"), Value(""))


class SchedulerCollector(Collector):
    """Collect the scheduler's metrics from the database, as of ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        yield self.runs()
        yield self.histogram(
            "scheduler_run_duration_seconds",
            "How long runs took (finished_at - started_at), runs that ended in the last 24 h.",
            Run.objects.ended(skipped=False).filter(
                started_at__isnull=False, finished_at__gte=self.now - WINDOW
            ),
            SecondsBetween("finished_at", "started_at"),
            DURATION_BUCKETS,
        )
        yield self.histogram(
            "scheduler_start_lateness_seconds",
            "How late runs started (started_at - scheduled_for), runs started in the last 24 h.",
            Run.objects.filter(started_at__gte=self.now - WINDOW),
            SecondsBetween("started_at", "scheduled_for"),
            LATENESS_BUCKETS,
        )
        yield self.queued()
        yield self.last_success()
        yield self.daemons()
        yield from self.outages()
        yield self.alerts()

    def runs(self) -> Metric:
        metric = GaugeMetricFamily(
            "scheduler_runs",
            "Runs in the history, by schedule and status (pruning lowers it).",
            labels=["schedule", "status"],
        )
        # Grouped by schedule id and counted with COUNT(*), so the (schedule, status) index
        # alone answers it: counting the id would make PostgreSQL read the table. The
        # names come from the small schedule table.
        names = dict(Schedule.objects.values_list("pk", "name"))
        counts: dict[tuple[str, str], int] = {}
        rows = Run.objects.values_list("schedule_id", "status").annotate(count=Count("*"))
        for schedule_id, status, count in rows.order_by():
            key = (names.get(schedule_id, "") if schedule_id is not None else "", status)
            counts[key] = counts.get(key, 0) + count
        for (schedule, status), count in counts.items():
            metric.add_metric([schedule, status], count)
        return metric

    def histogram(
        self,
        name: str,
        documentation: str,
        runs: QuerySet[Run],
        span: Any,
        buckets: Sequence[float],
    ) -> Metric:
        """Return a histogram per schedule of ``span`` (seconds), bucketed by the database."""
        # Grouped by an expression, not the column: SQLite would otherwise read a
        # schedule index in order over the whole history, not the window's index.
        rows = span_histogram(runs, Coalesce("schedule_id", Value(0)), span, buckets)
        names = dict(Schedule.objects.values_list("pk", "name"))
        metric = HistogramMetricFamily(name, documentation, labels=["schedule"])
        for group, (per_bucket, total, summed) in rows.items():
            bounds = [str(float(bound)) for bound in buckets]
            cumulative = list(zip(bounds, accumulate(per_bucket[:-1]), strict=True))
            cumulative.append(("+Inf", total))
            metric.add_metric([names.get(group, "")], cumulative, summed)
        return metric

    def queued(self) -> Metric:
        metric = GaugeMetricFamily(
            "scheduler_runs_queued",
            "Runs waiting to start: for a task worker (executor tasks) or a daemon.",
            labels=["executor"],
        )
        rows = Run.objects.queued().values_list("executor").annotate(count=Count("pk")).order_by()
        for executor, count in rows:
            metric.add_metric([executor], count)
        return metric

    def last_success(self) -> Metric:
        metric = GaugeMetricFamily(
            "scheduler_last_success_timestamp_seconds",
            "When each schedule's latest successful run ended (Unix time).",
            labels=["schedule"],
        )
        # One index seek per schedule on (schedule, status, finished_at), not a scan of
        # every successful run.
        latest = Run.objects.filter(
            schedule=OuterRef("pk"), status=Status.SUCCEEDED, finished_at__isnull=False
        ).order_by("-finished_at")
        rows = Schedule.objects.annotate(
            last=Subquery(latest.values("finished_at")[:1])
        ).values_list("name", "last")
        for schedule, last in rows.order_by():
            if last is not None:
                metric.add_metric([schedule], last.timestamp())
        return metric

    def daemons(self) -> Metric:
        stale_after = timedelta(seconds=conf.HEARTBEAT_TIMEOUT)
        live = (
            Heartbeat.objects.filter(kind="daemon", stopped_at__isnull=True)
            .exclude(pk__in=Heartbeat.objects.stale(stale_after).values("pk"))
            .count()
        )
        return GaugeMetricFamily(
            "scheduler_daemons_live", "Daemons whose heartbeat is fresh.", value=live
        )

    def outages(self) -> Iterator[Metric]:
        seen = DatabaseOutage.objects.aggregate(
            count=Count("pk"),
            seconds=Sum(ExpressionWrapper(F("ended_at") - F("started_at"), DurationField())),
        )
        yield CounterMetricFamily(
            "scheduler_database_outages",
            "Database outages daemons rode out (each daemon counts the ones it saw).",
            value=seen["count"],
        )
        seconds: timedelta | None = seen["seconds"]
        yield CounterMetricFamily(
            "scheduler_database_outage_seconds",
            "Time daemons spent without the database, summed over the daemons.",
            value=seconds.total_seconds() if seconds else 0.0,
        )

    def alerts(self) -> Metric:
        metric = GaugeMetricFamily(
            "scheduler_alerts_open", "Alerts raised and not cleared.", labels=["schedule", "kind"]
        )
        rows = (
            Alert.objects.filter(cleared_at__isnull=True)
            .values_list("schedule__name", "kind")
            .annotate(count=Count("pk"))
            .order_by()
        )
        for schedule, kind, count in rows:
            metric.add_metric([schedule, kind], count)
        return metric


def registry(now: datetime) -> CollectorRegistry:
    """Return a registry holding only the scheduler's metrics as of ``now``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SchedulerCollector(now))
    return registry
