"""``python -m bench``: this scheduler measured side by side with its alternatives.

Everything the benchmark needs lives here so that the product stays untouched: a ``noop``
command to schedule (:mod:`bench.benchapp`), django-apscheduler's recommended command as
the peer, settings that count SQL statements, and the measurements themselves
(:mod:`bench.run`).
"""
