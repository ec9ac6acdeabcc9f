"""Settings for the test suite: the project's own, plus a module of misbehaving commands.

The SQLite test database is a file, not memory, so that real ``runscheduler`` processes
started by end-to-end tests share it with the test process.
"""

import json
import os
import tempfile

from jobsite.settings import *  # noqa: F403
from jobsite.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"scheduler-tests-{os.getpid()}.sqlite3"),
    }

# End-to-end tests hand a daemon process its own SCHEDULER settings through this variable.
SCHEDULER = json.loads(os.environ.get("SCHEDULER_TEST_SETTINGS", "{}"))
