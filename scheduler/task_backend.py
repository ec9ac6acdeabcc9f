"""Whether runs can be handed to the configured Django Tasks backend.

The probe lives beside the ``tasks`` executor's settings rather than in the checks, so a
schedule's validation and the system check ask the same question without the models
importing the checks. ``scheduler.compat`` is imported when asked: the Tasks framework is
an optional dependency on Django 5.2.
"""

from __future__ import annotations

from django.conf import settings

from .conf import conf


def tasks_backend_problem() -> str | None:
    """Return why runs cannot go to ``SCHEDULER["TASKS_BACKEND"]``; None if they can.

    Asked by the system check when ``tasks`` is the default executor, and by a schedule's
    validation when it picks ``tasks``, so a wrong alias or queue, or a backend without
    workers, is refused where it is entered rather than found at the first fire time.
    """
    try:
        from .compat import DummyBackend, ImmediateBackend, task, task_backends
    except ImportError:
        return "The tasks executor needs the django-tasks package (pip install django-tasks)."
    if not hasattr(settings, "TASKS"):
        return (
            "The tasks executor needs a task backend with workers, and settings.TASKS is "
            "not set: its default, the Immediate backend, would run commands inside the "
            "scheduler."
        )
    alias, queue = conf.TASKS_BACKEND, conf.TASKS_QUEUE
    try:
        task(backend=alias, queue_name=queue)(_probe_task)
    except Exception as exc:
        return (
            f'SCHEDULER["TASKS_BACKEND"] {alias!r} with TASKS_QUEUE {queue!r} cannot take '
            f"runs: {exc}"
        )
    backend = task_backends[alias]
    if isinstance(backend, ImmediateBackend | DummyBackend):
        return (
            f'SCHEDULER["TASKS_BACKEND"] {alias!r} is {type(backend).__name__}, which hands '
            "runs to no worker (Immediate runs them inside the scheduler, Dummy never)."
        )
    return None


def _probe_task() -> None:
    """A module-level function to validate a backend with (a task's function must be one)."""
