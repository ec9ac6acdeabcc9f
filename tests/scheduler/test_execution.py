"""Recording how runs ended: results of runs ending together are written together."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection

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

    def __init__(self, *, hold_first: bool = False, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.writing = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail = fail

    def __call__(self, ended: list[tuple[Run, ExecutionResult]]) -> list[bool]:
        self.batches.append([run.pk for run, _ in ended])
        self.writing.set()
        self.release.wait(10)
        if self.fail:
            raise OperationalError("the database went away")
        return [run.pk % 2 == 1 for run, _ in ended]  # odd ids were still running


def finish_together(group: GroupFinish, writer: Writer, pks: list[int]) -> list[object]:
    """Finish the first run, and the others while its write is held; each one's outcome."""
    runs = [Run(pk=pk) for pk in pks]

    def finish(run: Run) -> object:
        try:
            return group.finish(run, SUCCEEDED)
        except OperationalError as exc:
            return exc

    with ThreadPoolExecutor(len(runs)) as pool:
        first = pool.submit(finish, runs[0])
        assert writer.writing.wait(10)
        rest = [pool.submit(finish, run) for run in runs[1:]]
        wait_for(lambda: len(group._queue) == len(runs) - 1, 10)
        writer.release.set()
        return [first.result(), *(future.result() for future in rest)]


def test_a_run_ending_alone_is_written_at_once_with_its_own_outcome():
    writer = Writer()
    group = GroupFinish(writer)
    assert group.finish(Run(pk=1), SUCCEEDED) is True
    assert group.finish(Run(pk=2), SUCCEEDED) is False
    assert writer.batches == [[1], [2]]


def test_runs_ending_while_a_write_is_going_are_written_in_one_batch_after_it():
    writer = Writer(hold_first=True)
    outcomes = finish_together(GroupFinish(writer), writer, [1, 2, 3, 4])
    assert writer.batches[0] == [1]
    assert sorted(writer.batches[1]) == [2, 3, 4]
    assert len(writer.batches) == 2
    assert outcomes == [True, False, True, False]


def test_a_failed_write_is_raised_in_every_thread_of_its_batch():
    writer = Writer(hold_first=True, fail=True)
    outcomes = finish_together(GroupFinish(writer), writer, [1, 2, 3])
    assert all(isinstance(outcome, OperationalError) for outcome in outcomes)


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
