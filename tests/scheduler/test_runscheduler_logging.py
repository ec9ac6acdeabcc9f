"""``runscheduler`` logs to the terminal unless the project's LOGGING decides."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from scheduler.management.commands.runscheduler import show_logs


@contextmanager
def stock_logging() -> Iterator[logging.Logger]:
    """Logging as in a project without LOGGING for ``scheduler`` (Django's defaults).

    Entered in the test's body: pytest gives the root logger a handler of its own for
    each test phase.
    """
    scheduler, root = logging.getLogger("scheduler"), logging.getLogger()
    saved = (scheduler.handlers[:], scheduler.level, scheduler.propagate, root.handlers[:])
    scheduler.handlers.clear()
    root.handlers.clear()
    scheduler.setLevel(logging.NOTSET)
    scheduler.propagate = True
    try:
        yield scheduler
    finally:
        scheduler.handlers[:], root.handlers[:] = saved[0], saved[3]
        scheduler.setLevel(saved[1])
        scheduler.propagate = saved[2]


def test_a_project_without_logging_gets_run_lines_on_the_terminal(capsys):
    with stock_logging():
        show_logs(1)
        logging.getLogger("scheduler.runner").info("Run %s of %s started", 1, "tick")
        logging.getLogger("scheduler.runner").debug("detail")
        err = capsys.readouterr().err
        assert "INFO scheduler.runner: Run 1 of tick started" in err
        assert "detail" not in err


@pytest.mark.parametrize(
    ("verbosity", "level"), [(0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG)]
)
def test_verbosity_sets_the_level(verbosity, level):
    with stock_logging() as logger:
        show_logs(verbosity)
        assert logger.level == level


def test_calling_again_keeps_one_terminal_handler():
    with stock_logging() as logger:
        show_logs(1)
        show_logs(2)
        assert len(logger.handlers) == 1
        assert logger.level == logging.DEBUG


def test_the_projects_logging_for_scheduler_takes_over():
    with stock_logging() as logger:
        own = logging.NullHandler()
        logger.addHandler(own)
        logger.setLevel(logging.ERROR)
        show_logs(2)
        assert logger.handlers == [own]
        assert logger.level == logging.ERROR


def test_the_projects_root_handlers_take_over():
    with stock_logging() as logger:
        root = logging.getLogger()
        root.addHandler(logging.NullHandler())
        show_logs(1)
        assert logger.handlers == []


def test_a_non_propagating_logger_without_handlers_is_the_projects_choice():
    with stock_logging() as logger:
        logger.propagate = False
        show_logs(1)
        assert logger.handlers == []
