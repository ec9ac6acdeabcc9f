"""``SecondsBetween``: the seconds from one datetime column to another, computed natively.

Django's ``F(end) - F(start)`` is a ``DurationField`` that SQLite computes through a
Python function called per row; over a day of runs (tens of thousands) that dominates a
metrics scrape. This expression uses the database's own arithmetic instead: SQLite's
``julianday`` (to the millisecond), and PostgreSQL's ``date_part('epoch', …)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, FloatField, Func, QuerySet
from django.db.models.sql.compiler import SQLCompiler


class SecondsBetween(Func):
    """Seconds from ``start`` to ``end`` (negative when ``end`` is earlier), as a float."""

    output_field = FloatField()

    def __init__(self, end: str, start: str, **extra: Any) -> None:
        super().__init__(F(end), F(start), **extra)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        # julianday counts whole milliseconds; rounded to them, the doubles' error goes.
        return self._two(compiler, "ROUND((julianday({end}) - julianday({start})) * 86400.0, 3)")

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        # date_part is a double; EXTRACT is numeric since PostgreSQL 14, slower by half.
        return self._two(compiler, "date_part('epoch', {end} - {start})")

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        raise NotImplementedError(f"SecondsBetween is not written for {connection.vendor}")

    def _two(self, compiler: SQLCompiler, template: str) -> tuple[str, list[Any]]:
        end, start = self.get_source_expressions()
        end_sql, end_params = compiler.compile(end)
        start_sql, start_params = compiler.compile(start)
        return f"({template.format(end=end_sql, start=start_sql)})", [*end_params, *start_params]


def histogram(
    runs: QuerySet[Any], group: Any, span: Any, buckets: Sequence[float]
) -> dict[Any, tuple[list[int], int, float]]:
    """Per ``group`` value: runs per bucket (not cumulative, one more past the last), their
    count and the sum of ``span``.

    One statement. The span is computed once per row in a subquery that is kept apart
    (``LIMIT -1`` on SQLite, ``OFFSET 0`` on PostgreSQL): merged into the outer query, the
    database would compute it again for every bucket it is compared with.
    """
    inner = runs.annotate(_group=group, _span=span).values_list("_group", "_span").order_by()
    sql, params = inner.query.sql_with_params()
    connection = connections[runs.db]
    fence = " LIMIT -1" if connection.vendor == "sqlite" else " OFFSET 0"
    g, s = (f"w.{connection.ops.quote_name(name)}" for name in ("_group", "_span"))
    whens = " ".join(f"WHEN {s} <= %s THEN {index}" for index in range(len(buckets)))
    query = (
        f"SELECT {g}, CASE {whens} ELSE {len(buckets)} END, COUNT(*), SUM({s}) "
        f"FROM ({sql}{fence}) w GROUP BY 1, 2"
    )
    result: dict[Any, tuple[list[int], int, float]] = {}
    with connection.cursor() as cursor:
        cursor.execute(query, [*buckets, *params])
        for key, bucket, count, total in cursor.fetchall():
            per_bucket, seen, summed = result.get(key, ([0] * (len(buckets) + 1), 0, 0.0))
            per_bucket[bucket] += count
            result[key] = (per_bucket, seen + count, summed + float(total or 0.0))
    return result
