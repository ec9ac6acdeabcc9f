"""Signals for projects that want their own alerting or bookkeeping around runs."""

from django.dispatch import Signal

# Sent after every run ends (succeeded, failed, timed out, interrupted or skipped), from
# the process that recorded it, with ``run`` (a ``scheduler.models.Run``).
run_finished = Signal()

# Sent once per alert (scheduler.alerts) when it is raised, and again when it clears, from
# the daemon that raised or cleared it, with ``alert`` (a ``scheduler.models.Alert``).
alert_raised = Signal()
alert_cleared = Signal()
