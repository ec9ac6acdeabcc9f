"""The import path under which stored jobs name their trigger; it lives in the adapter.

Every job in django-apscheduler's table pickles its trigger as
``scheduler.triggers.TimingTrigger``, so this name stays importable for as long as such
rows may exist. The class itself is in :mod:`scheduler.apscheduler_adapter`.
"""

from .apscheduler_adapter import TimingTrigger

__all__ = ["TimingTrigger"]
