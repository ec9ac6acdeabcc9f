"""Recording how runs ended: results of runs ending together are written together."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, OperationalError, connection

from scheduler.execution import GroupFinish
from scheduler.executor import ExecutionResult
from scheduler.models import Overlap, Reason, Run, Status
from scheduler.owners import Owner
from tests.conftest import wait_for

SUCCEEDED = ExecutionResult(Status.SUCCEEDED, 0, "", "")
FIRE = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ME = Owner("test-host", 4242)


class Writer:
    """Stands in for ``Run.finish_many``: records each batch, may hold the first one."""

    def __init__(self, *, hold_first: bool = False, fails=lambda batch: None) -> None:
        self.batches: list[list[int]] = []
        self.writing = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fails = fails

    def __call__(self, ended: list[tuple[Run, ExecutionResult]]) -> list[bool]:
        batch = [run.pk for run, _ in ended]
        self.batches.append(batch)
        self.writing.set()
        self.release.wait(10)
        error = self.fails(batch)
        if error is not None:
            raise error
        return [pk % 2 == 1 for pk in batch]  # odd ids were still running


def finish_together(group: GroupFinish, writer: Writer, pks: list[int]) -> list[object]:
    """Finish the first run, and the others while its write is held; each one's outcome."""
    runs = [Run(pk=pk) for pk in pks]

    def finish(run: Run) -> object:
        try:
            return group.finish(run, SUCCEEDED)
        except BaseException as exc:
            return exc

    with ThreadPoolExecutor(len(runs)) as pool:
        first = pool.submit(finish, runs[0])
        assert writer.writing.wait(10)
        rest = [pool.submit(finish, run) for run in runs[1:]]
        wait_for(lambda: len(group._queue) == len(runs) - 1, 10)
        writer.release.set()
        return [first.result(), *(future.result() for future in rest)]


@pytest.fixture
def no_reload(monkeypatch):
    """The runs here are not in the database: an ended-elsewhere one is not reloaded."""
    monkeypatch.setattr(Run, "refresh_from_db", lambda self: None)


@pytest.mark.usefixtures("no_reload")
def test_a_run_ending_alone_is_written_at_once_with_its_own_outcome():
    writer = Writer()
    group = GroupFinish(writer)
    assert group.finish(Run(pk=1), SUCCEEDED) is True
    assert group.finish(Run(pk=2), SUCCEEDED) is False
    assert writer.batches == [[1], [2]]


@pytest.mark.usefixtures("no_reload")
def test_runs_ending_while_a_write_is_going_are_written_in_one_batch_after_it():
    writer = Writer(hold_first=True)
    outcomes = finish_together(GroupFinish(writer), writer, [1, 2, 3, 4])
    assert writer.batches[0] == [1]
    assert sorted(writer.batches[1]) == [2, 3, 4]
    assert len(writer.batches) == 2
    assert outcomes == [True, False, True, False]


@pytest.mark.usefixtures("no_reload")
def test_a_batch_that_fails_is_written_run_by_run_so_only_the_failing_run_sees_the_error():
    def fails(batch: list[int]) -> Exception | None:
        return DataError("exit code out of range") if 3 in batch else None

    writer = Writer(hold_first=True, fails=fails)
    outcomes = finish_together(GroupFinish(writer), writer, [1, 2, 3, 5])
    assert outcomes[:2] + outcomes[3:] == [True, False, True]
    assert isinstance(outcomes[2], DataError)
    assert sorted(writer.batches[1]) == [2, 3, 5]
    assert sorted(map(tuple, writer.batches[2:])) == [(2,), (3,), (5,)]


@pytest.mark.usefixtures("no_reload")
def test_an_unreachable_database_is_raised_in_every_thread_of_the_batch():
    writer = Writer(hold_first=True, fails=lambda batch: OperationalError("went away"))
    outcomes = finish_together(GroupFinish(writer), writer, [1, 2, 3])
    assert all(isinstance(outcome, OperationalError) for outcome in outcomes)
    assert len(writer.batches) == 3  # [1], then [2, 3], then one of them alone: no more


@pytest.mark.usefixtures("no_reload")
def test_a_batch_that_meets_a_passing_database_error_is_written_run_by_run():
    def fails(batch: list[int]) -> Exception | None:
        return OperationalError("deadlock detected") if len(batch) > 1 else None

    writer = Writer(hold_first=True, fails=fails)
    outcomes = finish_together(GroupFinish(writer), writer, [1, 2, 3])
    assert outcomes == [True, False, True]


@pytest.mark.usefixtures("no_reload")
def test_a_stopped_writer_leaves_the_others_results_to_the_next_thread_but_not_its_own():
    def fails(batch: list[int]) -> BaseException | None:
        # The writer of the second batch is told to exit while writing it.
        return SystemExit(1) if len(writer.batches) == 2 else None

    writer = Writer(hold_first=True, fails=fails)
    pks = [1, 3, 5]
    outcomes = finish_together(GroupFinish(writer), writer, pks)
    assert outcomes[0] is True
    assert sorted(writer.batches[1]) == [3, 5]
    (exited,) = [
        pk for pk, outcome in zip(pks, outcomes, strict=True) if isinstance(outcome, SystemExit)
    ]
    (other,) = {3, 5} - {exited}
    assert writer.batches[2:] == [[other]]  # its own result is ended by its thread, as stopped
    assert outcomes[pks.index(other)] is True


@pytest.mark.django_db
def test_a_thread_inside_a_transaction_records_its_own_result_in_it(make_schedule):
    run = Run.claim(make_schedule().pk, FIRE, Reason.SCHEDULED, owner=ME)
    writer = Writer(fails=lambda batch: AssertionError("grouped inside a transaction"))
    assert GroupFinish(writer).finish(run, SUCCEEDED) is True
    assert writer.batches == []
    assert Run.objects.get(pk=run.pk).status == Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_runs_of_many_threads_are_each_recorded_once_in_the_database(make_schedule):
    schedule = make_schedule(overlap=Overlap.ALLOW)
    fires = [FIRE + timedelta(minutes=n) for n in range(40)]
    runs = [Run.claim(schedule.pk, fire, Reason.SCHEDULED, owner=ME) for fire in fires]
    group = GroupFinish()

    def finish(run: Run) -> bool:
        try:
            return group.finish(run, SUCCEEDED)
        finally:
            connection.close()  # this pool thread's own

    with ThreadPoolExecutor(8) as pool:
        ended = list(pool.map(finish, runs))
    assert ended == [True] * len(runs)
    assert Run.objects.filter(status=Status.SUCCEEDED).count() == len(runs)
    assert all(run.status == Status.SUCCEEDED for run in runs)
