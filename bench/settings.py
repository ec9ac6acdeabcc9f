"""Settings for every process of the benchmark: the test settings plus the ``noop`` command.

``DEBUG`` is off as in production: with it on, Django keeps every statement in
``connection.queries``, which would inflate time and memory. With ``BENCH_QUERY_LOG=<path>``
a process started as ``manage.py …`` (a daemon or the peer, not the fork server or its
children) counts the SQL statements it sends and writes the running count to that path
every second, so the benchmark can count queries without touching the product's code.
"""

import os
import sys
from pathlib import Path

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.benchapp"]

DEBUG = False

if os.environ.get("BENCH_QUERY_LOG") and Path(sys.argv[0]).name == "manage.py":
    from bench.querylog import install

    install(Path(os.environ["BENCH_QUERY_LOG"]))
