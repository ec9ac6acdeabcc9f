"""Migrations that change more than tables: each runs forwards and back, losing no row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from scheduler.models import Reason, Run, Status

BEFORE_0012 = [("scheduler", "0011_daemons_divide_schedules")]


def _migrate(targets: list[tuple[str, str]] | None = None) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


@pytest.fixture
def back_to_latest() -> Iterator[None]:
    """Leave the database fully migrated, whatever the test migrated it to."""
    yield
    _migrate()


def _indexed_alone() -> list[str]:
    """Return the run columns with an index of their own, once per such index."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Run._meta.db_table)
    return sorted(
        info["columns"][0]
        for info in constraints.values()
        if info["index"] and not info["unique"] and len(info["columns"] or ()) == 1
    )


@pytest.mark.django_db(transaction=True)
def test_0012_drops_the_run_indexes_that_others_begin_with_and_its_reverse_restores_them(
    make_schedule, back_to_latest
):
    run = Run.objects.create(
        schedule=make_schedule(),
        command="say",
        reason=Reason.SCHEDULED,
        status=Status.SUCCEEDED,
        scheduled_for=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert {"schedule_id", "status"}.isdisjoint(_indexed_alone())

    _migrate(BEFORE_0012)
    indexed = _indexed_alone()
    assert indexed.count("schedule_id") == 1
    # On PostgreSQL a CharField's index has a twin for LIKE.
    assert indexed.count("status") == (2 if connection.vendor == "postgresql" else 1)

    _migrate()
    assert {"schedule_id", "status"}.isdisjoint(_indexed_alone())
    assert "heartbeat_id" in _indexed_alone()  # foreign keys not led by another index stay
    assert list(Run.objects.values_list("pk", "schedule_id", "status")) == [
        (run.pk, run.schedule_id, Status.SUCCEEDED)
    ]
