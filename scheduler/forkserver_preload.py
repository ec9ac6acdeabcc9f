"""Imported once by the fork server so that every run's child starts with Django ready.

The executor module is imported too: each child unpickles its entry point from there, and
importing it afresh in every child cost more than half of a run's overhead.
"""

import django

django.setup()

import scheduler.executor  # noqa: E402, F401
