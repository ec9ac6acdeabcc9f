"""``SecondsBetween``: the seconds from one datetime column to another, computed natively.

Django's ``F(end) - F(start)`` is a ``DurationField`` that SQLite computes through a
Python function called per row; over a day of runs (tens of thousands) that dominates a
metrics scrape. This expression uses the database's own arithmetic instead: SQLite's
``julianday`` and the stored text's microseconds, and PostgreSQL's ``EXTRACT(EPOCH …)``.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, FloatField, Func
from django.db.models.sql.compiler import SQLCompiler


class SecondsBetween(Func):
    """Seconds from ``start`` to ``end`` (negative when ``end`` is earlier), as a float."""

    output_field = FloatField()

    def __init__(self, end: str, start: str, **extra: Any) -> None:
        super().__init__(F(end), F(start), **extra)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        # Whole seconds from julianday of "YYYY-MM-DD HH:MM:SS", rounded; the microseconds
        # from the stored text's ".ffffff" (empty when zero): exact, where julianday of
        # the full text is off by microseconds.
        return self._two(
            compiler,
            "ROUND(ROUND((julianday(substr({end}, 1, 19)) - julianday(substr({start}, 1, 19)))"
            " * 86400.0) + CAST(substr({end}, 20) AS REAL) - CAST(substr({start}, 20) AS REAL), 6)",
        )

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        return self._two(compiler, "EXTRACT(EPOCH FROM ({end} - {start}))::float8")

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        raise NotImplementedError(f"SecondsBetween is not written for {connection.vendor}")

    def _two(self, compiler: SQLCompiler, template: str) -> tuple[str, list[Any]]:
        end, start = self.get_source_expressions()
        end_sql, end_params = compiler.compile(end)
        start_sql, start_params = compiler.compile(start)
        return f"({template.format(end=end_sql, start=start_sql)})", [*end_params, *start_params]
