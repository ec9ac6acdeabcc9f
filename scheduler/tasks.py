"""The ``tasks`` executor: runs handed to a Django Tasks backend and run by its workers.

The daemon stays a pure scheduler in this mode: it claims a fire time as a ``queued`` run
(the same constraint and overlap rule as any run) and enqueues :data:`run_task` with the
run's id. Whichever worker of the backend picks the task up (``db_worker`` of
django-tasks-db, ``rqworker`` of django-tasks-rq, …) starts the run under its own
heartbeat and executes it through :func:`scheduler.runner.execute_run`, the same path as
the daemon's own runs: a child process, the same capture, caps, timeout and recording.

Imported only where the ``tasks`` executor is used: defining the task validates it
against the configured backend, which other set-ups need not have.
"""

from __future__ import annotations

import logging

from django_tasks import task

from . import runner
from .conf import conf
from .liveness import heartbeat_owner
from .models import Run

logger = logging.getLogger("scheduler.tasks")


@task(backend=conf.TASKS_BACKEND, queue_name=conf.TASKS_QUEUE)
def run_task(run_id: int) -> str:
    """In a worker: start the queued run ``run_id`` and execute it; return how it ended.

    A task delivered twice, or for a run already ended (interrupted, failed to enqueue
    and retried by hand), starts nothing: the run's status decides, not the backend.
    """
    with heartbeat_owner("worker") as owner:
        run = runner.run_queued(run_id, owner=owner)
    if run is None:
        logger.info("Run %s was not queued any more; nothing to do", run_id)
        return "not started"
    return run.status


def hand_over(run: Run) -> Run:
    """Enqueue a ``queued`` run on the task backend, unless another daemon already did.

    A backend that cannot take it (Redis down, a queue that does not exist) fails the run
    with the reason in ``stderr``; the daemon goes on scheduling.
    """
    if not run.take_hand_over():
        return run
    alias, queue = conf.TASKS_BACKEND, conf.TASKS_QUEUE
    try:
        result = run_task.using(backend=alias, queue_name=queue).enqueue(run.pk)
    except Exception as exc:
        logger.error("Run %s of %s could not be queued on %r: %r", run.pk, run.schedule, alias, exc)
        message = (
            f"[scheduler] Not queued: the task backend {alias!r} (queue {queue!r}) refused "
            f"this run: {type(exc).__name__}: {exc}\n"
        )
        runner.persist(lambda: run.fail(message), run)
        runner.finished(run)
        return run
    runner.persist(lambda: run.set_task_id(str(result.id)), run)
    logger.info(
        "Run %s of %s queued as task %s on %r (%s)", run.pk, run.schedule, result.id, alias, queue
    )
    return run
