"""Admin queries that stay fast over a long run history (a million rows and more).

Each reads the runs through an index and a bound: the run list counts at most
``COUNT_CAP`` rows, its default search finds schedules (a small table) rather than reading
every run's output, and the schedule list's success rate reads each schedule's latest
finished runs through the (schedule, -scheduled_for) index, never the whole history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest

from .models import Run, Schedule, Status

COUNT_CAP = 10_000
OUTPUT_SEARCH = "search_output"
UNION_CHUNK = 200


if TYPE_CHECKING:
    # django-stubs' Paginator is generic, Django's is not (without django_stubs_ext).
    PaginatorBase = Paginator[Any]
else:
    PaginatorBase = Paginator


class CappedPaginator(PaginatorBase):
    """Count at most ``COUNT_CAP + 1`` rows: past that, the list says "more than".

    A full ``COUNT(*)`` reads every matching row; pages past the cap are reached by
    filtering (status, schedule, date), not by paging through a million rows.
    """

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if not isinstance(object_list, QuerySet):
            return super().count
        found = object_list.order_by().values("pk")[: self.cap + 1].count()
        self.capped = found > self.cap
        return min(found, self.cap)

    capped = False


class OutputSearchFilter(admin.SimpleListFilter):
    """Opt in to searching runs' output, which reads every run (a scan of the table)."""

    title = "search in"
    parameter_name = OUTPUT_SEARCH

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Output too (slow over a long history)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        return queryset  # RunAdmin.get_search_results reads the choice


def search_output(request: HttpRequest) -> bool:
    """Whether the run list's search should read stdout and stderr as well."""
    return request.GET.get(OUTPUT_SEARCH) == "yes"


def runs_matching(queryset: QuerySet[Run], search_term: str) -> QuerySet[Run]:
    """Return the runs of schedules whose name or command has every word of the term.

    A word ``#123`` (or a bare number) also matches run 123. The schedules are few, so
    the runs are found through the schedule index.
    """
    for word in search_term.split():
        number = word.removeprefix("#")
        schedules = Schedule.objects.filter(Q(name__icontains=word) | Q(command__icontains=word))
        match = Q(schedule_id__in=list(schedules.values_list("pk", flat=True)))
        if number.isdigit():
            match |= Q(pk=int(number))
        queryset = queryset.filter(match)
    return queryset


def recent_success(schedule_ids: Sequence[int], last: int) -> dict[int, tuple[int, int]]:
    """Return (succeeded, finished) among each schedule's latest ``last`` finished runs.

    Two queries whatever the history: the boundary of each schedule's window (an index
    seek per schedule), then the counts of each window (an index range per schedule,
    one ``UNION ALL``).
    """
    if not schedule_ids:
        return {}
    finished = Run.objects.ended(skipped=False)
    edge = finished.filter(schedule=OuterRef("pk")).order_by("-scheduled_for", "-id")[
        last - 1 : last
    ]
    edges = Schedule.objects.filter(pk__in=schedule_ids).annotate(
        edge_at=Subquery(edge.values("scheduled_for")), edge_id=Subquery(edge.values("id"))
    )
    parts = []
    for schedule_id, edge_at, edge_id in edges.values_list("pk", "edge_at", "edge_id"):
        window = finished.filter(schedule_id=schedule_id)
        if edge_at is not None:  # a range on the (schedule, -scheduled_for) index
            window = window.filter(scheduled_for__gte=edge_at).exclude(
                scheduled_for=edge_at, id__lt=edge_id
            )
        parts.append(
            window.values_list("schedule_id")
            .annotate(total=Count("pk"), ok=Count("pk", filter=Q(status=Status.SUCCEEDED)))
            .order_by()
        )
    rates = {}
    for start in range(0, len(parts), UNION_CHUNK):  # SQLite allows 500 compound parts
        chunk = parts[start : start + UNION_CHUNK]
        for schedule_id, total, ok in chunk[0].union(*chunk[1:], all=True):
            rates[schedule_id] = (ok, total)
    return rates


def annotate_success(schedules: Iterable[Schedule], last: int) -> None:
    """Set ``recent_success`` (succeeded, finished) on each of ``schedules``."""
    listed = list(schedules)
    rates = recent_success([schedule.pk for schedule in listed], last)
    for schedule in listed:
        schedule.recent_success = rates.get(schedule.pk, (0, 0))  # type: ignore[attr-defined]


class SuccessRateChangeList(ChangeList):
    """The schedule list: each listed schedule gets ``recent_success`` in two queries."""

    last = 20

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        annotate_success(self.result_list, self.last)
