"""The ``tasks`` executor: runs handed to a Django Tasks backend and run by its workers.

The daemon stays a pure scheduler in this mode: it claims a fire time as a ``queued`` run
(the same constraint and overlap rule as any run) and enqueues :data:`run_task` with the
run's id. Whichever worker of the backend picks the task up (``db_worker`` of
django-tasks-db, ``rqworker`` of django-tasks-rq, …) starts the run under its own
heartbeat and executes it through :func:`scheduler.execution.execute_run`, the same path
as the daemon's own runs: a child process, the same capture, caps, timeout and recording.

Importing this module neither needs the Tasks framework nor reads settings: a task is
validated against a backend when it is built, so ``run_task`` is built when first asked
for (a worker importing it by path) and each enqueue builds one for the configured
backend and queue (:func:`task_for`). The framework (:mod:`scheduler.compat`) is an
optional dependency on Django 5.2, imported when a task is built.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import execution
from .conf import conf
from .liveness import heartbeat_owner
from .models import Run, Status

if TYPE_CHECKING:
    from django_tasks.base import Task

logger = logging.getLogger("scheduler.tasks")


def _run_task(run_id: int) -> str:
    """In a worker: start the queued run ``run_id`` and execute it; return how it ended.

    A task delivered twice, or for a run already ended, starts nothing: the run's
    status decides, not the backend.
    """
    with heartbeat_owner("worker") as owner:
        run = execution.run_queued(run_id, owner=owner)
    if run is None:
        logger.info("Run %s was not queued any more; nothing to do", run_id)
        return "not started"
    return str(run.status)


# Backends store a task as its function's path, and workers import the task by it: the
# path stays scheduler.tasks.run_task, which ``__getattr__`` below answers.
_run_task.__name__ = _run_task.__qualname__ = "run_task"


def task_for(backend: str, queue: str) -> Task[[int], str]:
    """Return the run task on ``backend`` and ``queue``; raise if the backend refuses it."""
    from .compat import task  # optional dependency: see the module's docstring

    run_task: Task[[int], str] = task(backend=backend, queue_name=queue)(_run_task)
    return run_task


def __getattr__(name: str) -> Any:
    """Build ``run_task`` (on the configured backend and queue) when it is asked for."""
    if name == "run_task":
        return task_for(conf.TASKS_BACKEND, conf.TASKS_QUEUE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def hand_over(run: Run, *, retry_before: datetime | None = None) -> Run:
    """Enqueue a ``queued`` run on the task backend, unless another daemon already did.

    A backend that cannot take it (Redis down, a queue that does not exist) fails the run
    with the reason in ``stderr``; the daemon goes on scheduling.
    """
    if not run.claim_enqueue(retry_before=retry_before):
        return run
    alias, queue = conf.TASKS_BACKEND, conf.TASKS_QUEUE
    try:
        result = task_for(alias, queue).enqueue(run.pk)
    except Exception as exc:
        logger.error("Run %s of %s could not be queued on %r: %r", run.pk, run.schedule, alias, exc)
        message = (
            f"[scheduler] Not queued: the task backend {alias!r} (queue {queue!r}) refused "
            f"this run: {type(exc).__name__}: {exc}\n"
        )
        # The backend may have stored the task before failing, and a worker started it.
        execution.end(run, lambda: run.fail(message, expected=Status.QUEUED))
        return run
    execution.persist(lambda: run.record_task_id(str(result.id)), run)
    logger.info(
        "Run %s of %s queued as task %s on %r (%s)", run.pk, run.schedule, result.id, alias, queue
    )
    return run


def fail_lost(enqueued_before: datetime, *, limit: int = 50) -> list[Run]:
    """Fail queued runs whose task the backend ended, or no longer has, without starting them.

    Such a run would stay ``queued`` for ever (and keep an ``overlap="skip"`` schedule
    skipping): its task failed before it could start the run (the database was away in
    the worker), or the backend lost it (Redis flushed). A task still waiting for a
    worker leaves its run ``queued``, visibly. Backends that cannot look results up
    are not asked.
    """
    from .compat import TaskResultDoesNotExist, TaskResultStatus, task_backends

    backend = task_backends[conf.TASKS_BACKEND]
    if not backend.supports_get_result:
        return []
    failed = []
    waiting = Run.objects.awaiting_worker(enqueued_before).select_related("schedule")
    for run in waiting.order_by("enqueued_at")[:limit]:
        try:
            result = backend.get_result(run.task_id)
        except TaskResultDoesNotExist:
            reason = f"the task backend no longer has its task {run.task_id}"
        except Exception as exc:  # the backend is down: nothing is known to be lost
            logger.debug("Could not ask %r about queued runs: %r", conf.TASKS_BACKEND, exc)
            break
        else:
            if result.status not in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED):
                continue
            errors = ", ".join(error.exception_class_path for error in result.errors)
            reason = f"its task {run.task_id} ended {result.status} without starting it"
            reason += f" ({errors})" if errors else ""
        if run.fail(f"[scheduler] Not run: {reason}.\n", expected=Status.QUEUED):
            logger.error("Run %s of %s lost: %s", run.pk, run.schedule, reason)
            failed.append(run)
    return failed
