"""Writing rows with statements built once: updates and locks by primary key, inserts,
upserts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import (
    IntegrityError,
    NotSupportedError,
    OperationalError,
    connection,
    models,
    transaction,
)
from django.db.models.functions import Now
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django_apscheduler.models import DjangoJob

from scheduler import bulk
from scheduler.bulk import insert, insert_many, lock_by_pk, update_by_pk, upsert
from scheduler.models import Reason, Run, Status
from tests.conftest import in_other_connection

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


class Stamped(models.Model):
    """A model whose rows get a value from the database, which ``insert`` cannot read back."""

    name = models.CharField(max_length=10)
    made = models.DateTimeField(db_default=Now())

    class Meta:
        app_label = "testapp"
        managed = False

    def __str__(self) -> str:
        return self.name


@pytest.mark.django_db
def test_each_row_gets_its_own_values_prepared_as_the_orm_saves_them(
    django_assert_num_queries,
):
    DjangoJob.objects.bulk_create(
        DjangoJob(id=f"job{n}", next_run_time=NOW, job_state=b"old") for n in range(3)
    )
    berlin = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    rows = [
        ("job0", (berlin + timedelta(hours=1), b"\x00new")),
        ("job2", (None, b"")),
        ("gone", (NOW, b"x")),  # removed meanwhile: left alone
    ]
    with django_assert_num_queries(1):
        update_by_pk(DjangoJob, ["next_run_time", "job_state"], rows)
    stored = {job.id: (job.next_run_time, bytes(job.job_state)) for job in DjangoJob.objects.all()}
    assert stored == {
        "job0": (NOW + timedelta(hours=1), b"\x00new"),
        "job1": (NOW, b"old"),
        "job2": (None, b""),
    }


@pytest.mark.django_db
def test_no_rows_send_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        update_by_pk(DjangoJob, ["next_run_time"], [])


@pytest.mark.django_db
@pytest.mark.parametrize("keys", [["job0"], ["job0", "job1", "job2"]])
def test_rows_failing_the_condition_are_left_alone_and_not_counted(keys):
    DjangoJob.objects.bulk_create(
        DjangoJob(id=f"job{n}", next_run_time=NOW if n != 1 else None, job_state=b"old")
        for n in range(3)
    )
    rows = [(key, (b"new",)) for key in keys]
    changed = update_by_pk(DjangoJob, ["job_state"], rows, where={"next_run_time": NOW})
    assert changed == len(keys) - ("job1" in keys)
    stored = dict(DjangoJob.objects.values_list("id", "job_state"))
    assert {key: bytes(state) for key, state in stored.items()} == {
        "job0": b"new",
        "job1": b"old",
        "job2": b"new" if "job2" in keys else b"old",
    }


def _run(schedule, scheduled_for: datetime, **fields) -> Run:
    return Run(
        **fields,
        schedule=schedule,
        command=schedule.command,
        args=["--flag", "two words"],
        reason=Reason.SCHEDULED,
        status=Status.RUNNING,
        scheduled_for=scheduled_for,
    )


def test_an_inserted_row_reads_back_as_the_orm_would_have_saved_it(
    make_schedule, django_assert_num_queries
):
    run = _run(make_schedule(), NOW.astimezone(ZoneInfo("America/New_York")))
    with django_assert_num_queries(1):
        insert(run)
    assert run.pk is not None and not run._state.adding and run._state.db == "default"
    stored = Run.objects.get(pk=run.pk)
    assert (stored.scheduled_for, stored.args, stored.created_at) == (
        NOW,
        ["--flag", "two words"],
        run.created_at,
    )


def test_each_insert_gets_a_key_of_its_own(make_schedule):
    schedule = make_schedule()
    runs = [_run(schedule, NOW + timedelta(minutes=n)) for n in range(3)]
    for run in runs:
        insert(run)
    assert sorted(Run.objects.values_list("pk", flat=True)) == sorted(run.pk for run in runs)


def test_a_conflicting_insert_raises_integrity_error_and_stores_nothing(make_schedule):
    schedule = make_schedule()
    insert(_run(schedule, NOW))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert(_run(schedule, NOW))
    assert Run.objects.count() == 1


@pytest.mark.parametrize("count", [2, 100])
def test_many_inserted_rows_each_get_the_key_of_their_own_row(make_schedule, count):
    schedule = make_schedule()
    runs = [_run(schedule, NOW + timedelta(minutes=n)) for n in range(count)]
    with CaptureQueriesContext(connection) as queries:
        insert_many(runs)
    if connection.features.can_return_rows_from_bulk_insert:
        assert len(queries) < count
    assert len({run.pk for run in runs}) == count
    stored = dict(Run.objects.values_list("pk", "scheduled_for"))
    assert {run.pk: run.scheduled_for for run in runs} == stored
    assert all(not run._state.adding and run._state.db == "default" for run in runs)


def test_rows_split_over_statements_each_get_the_key_of_their_own_row(make_schedule, monkeypatch):
    monkeypatch.setattr(bulk, "_MANY", 3)  # PostgreSQL: a statement of 3 rows, then of 1
    schedule = make_schedule()
    runs = [_run(schedule, NOW + timedelta(minutes=n)) for n in range(4)]
    insert_many(runs)
    stored = dict(Run.objects.values_list("pk", "scheduled_for"))
    assert {run.pk: run.scheduled_for for run in runs} == stored


@pytest.mark.django_db
def test_a_model_without_an_automatic_key_is_refused_by_insert():
    job = DjangoJob(id=None, next_run_time=NOW, job_state=b"")
    with pytest.raises(ValueError, match="not a plain model"):
        insert(job)


@pytest.mark.django_db
def test_inserting_no_rows_sends_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        insert_many([])


def test_a_conflict_among_many_rows_raises_integrity_error(make_schedule):
    schedule = make_schedule()
    insert(_run(schedule, NOW))
    runs = [_run(schedule, NOW + timedelta(minutes=n)) for n in (1, 0, 2)]
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_many(runs)
    assert Run.objects.count() == 1


def test_rows_of_different_models_are_refused_by_insert_many(make_schedule):
    with pytest.raises(ValueError, match="one model, not Run and Stamped"):
        insert_many([_run(make_schedule(), NOW), Stamped(name="x")])
    assert not Run.objects.exists()


def test_a_row_with_a_key_already_is_refused(make_schedule):
    run = _run(make_schedule(), NOW)
    run.pk = 12345
    with pytest.raises(ValueError, match="primary key already"):
        insert(run)
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_upsert_adds_new_rows_and_replaces_the_other_fields_of_stored_ones(
    django_assert_num_queries,
):
    DjangoJob.objects.create(id="job0", next_run_time=NOW, job_state=b"old")
    berlin = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    rows = [("job0", berlin + timedelta(hours=1), b"\x00new"), ("job1", None, b"added")]
    with django_assert_num_queries(1):
        upsert(DjangoJob, ["id", "next_run_time", "job_state"], rows, unique=["id"])
    stored = {job.id: (job.next_run_time, bytes(job.job_state)) for job in DjangoJob.objects.all()}
    assert stored == {"job0": (NOW + timedelta(hours=1), b"\x00new"), "job1": (None, b"added")}


@pytest.mark.django_db
def test_upsert_splits_more_rows_than_a_statement_may_carry(monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(type(connection.features), "max_query_params", 30)  # 10 rows
    rows = [(f"job{n:02}", NOW + timedelta(minutes=n), b"") for n in range(25)]
    with django_assert_num_queries(3):
        upsert(DjangoJob, ["id", "next_run_time", "job_state"], rows, unique=["id"])
    with django_assert_num_queries(0):
        upsert(DjangoJob, ["id", "next_run_time", "job_state"], [], unique=["id"])
    assert list(DjangoJob.objects.order_by("id").values_list("next_run_time", flat=True)) == [
        NOW + timedelta(minutes=n) for n in range(25)
    ]


@pytest.mark.django_db
def test_upsert_refuses_a_database_without_conflict_updates_and_rows_with_nothing_to_update(
    monkeypatch,
):
    with pytest.raises(ValueError, match="besides the unique ones"):
        upsert(DjangoJob, ["id"], [("job0",)], unique=["id"])
    monkeypatch.setattr(type(connection.features), "supports_update_conflicts", False)
    with pytest.raises(NotSupportedError):
        upsert(DjangoJob, ["id", "job_state"], [("job0", b"")], unique=["id"])
    assert not DjangoJob.objects.exists()


@pytest.mark.django_db
def test_lock_returns_the_keys_meeting_the_condition_in_order(django_assert_num_queries):
    DjangoJob.objects.bulk_create(
        DjangoJob(id=f"job{n}", next_run_time=None if n == 1 else NOW, job_state=b"")
        for n in range(4)
    )
    with transaction.atomic(), django_assert_num_queries(1):
        locked = lock_by_pk(
            DjangoJob, ["job3", "job1", "gone", "job0"], where={"next_run_time": NOW}
        )
    assert locked == ["job0", "job3"]


@pytest.mark.django_db
def test_lock_splits_more_keys_than_a_statement_may_carry(monkeypatch, django_assert_num_queries):
    # A property on some backends (SQLite on Django 6.0): set on the class for this test.
    monkeypatch.setattr(type(connection.features), "max_query_params", 100)
    count = 205
    DjangoJob.objects.bulk_create(
        (DjangoJob(id=f"job{n:05}", next_run_time=NOW, job_state=b"") for n in range(count)),
        batch_size=500,
    )
    keys = [f"job{n:05}" for n in range(count)]
    with transaction.atomic(), django_assert_num_queries(3):
        assert lock_by_pk(DjangoJob, reversed(keys)) == keys


@pytest.mark.django_db(transaction=True)
def test_lock_outside_a_transaction_is_refused():
    with pytest.raises(TransactionManagementError, match="outside a transaction"):
        lock_by_pk(DjangoJob, ["job0"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks")
def test_a_locked_row_can_still_be_referred_to_but_not_locked_again(make_schedule):
    schedule = make_schedule()
    run = _run(schedule, NOW)
    insert(run)
    with transaction.atomic():
        assert lock_by_pk(Run, [run.pk]) == [run.pk]

        def lock_again() -> list[int]:
            with transaction.atomic():
                return list(
                    Run.objects.select_for_update(nowait=True)
                    .filter(pk=run.pk)
                    .values_list("pk", flat=True)
                )

        with pytest.raises(OperationalError, match="could not obtain lock"):
            in_other_connection(lock_again)

        def rerun() -> int:
            rerun = _run(schedule, NOW + timedelta(minutes=1), rerun_of=run)
            insert(rerun)
            return rerun.pk

        referring = in_other_connection(rerun)
    assert isinstance(referring, int)


@pytest.mark.django_db
def test_a_condition_on_none_is_refused_rather_than_matching_nothing():
    with pytest.raises(ValueError, match="next_run_time=None"):
        update_by_pk(DjangoJob, ["job_state"], [("job0", (b"",))], where={"next_run_time": None})


@pytest.mark.django_db
def test_a_model_with_database_computed_values_is_refused_by_insert():
    with pytest.raises(ValueError, match="not a plain model"):
        insert(Stamped(name="x"))
