"""The Django Tasks framework: ``django.tasks`` on Django 6.0 and later, else the backport.

Django 6.0 ships the framework the ``django-tasks`` package backports to 5.2, under the same
names. The ``tasks`` executor imports it from here, so one code path serves both; on 5.2
the backport comes with the ``tasks`` (or ``rq``) extra. Importing this module raises
ImportError when neither is available, which callers treat as "the tasks executor cannot
be used here".
"""

from __future__ import annotations

import importlib

import django


def tasks_package(version: tuple[int | str, ...] = django.VERSION) -> str:
    """The package that provides the Tasks framework on this Django ``version``."""
    return "django.tasks" if tuple(version[:2]) >= (6, 0) else "django_tasks"


_package = tasks_package()
_tasks = importlib.import_module(_package)

task = _tasks.task
task_backends = _tasks.task_backends
TaskResultStatus = _tasks.TaskResultStatus
TaskResultDoesNotExist = importlib.import_module(f"{_package}.exceptions").TaskResultDoesNotExist
DummyBackend = importlib.import_module(f"{_package}.backends.dummy").DummyBackend
ImmediateBackend = importlib.import_module(f"{_package}.backends.immediate").ImmediateBackend

__all__ = [
    "DummyBackend",
    "ImmediateBackend",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "task",
    "task_backends",
    "tasks_package",
]
