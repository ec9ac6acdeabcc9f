"""Settings for the test suite: the project's own, plus a module of misbehaving commands.

The SQLite test database is a file, not memory, so that real ``runscheduler`` processes
started by end-to-end tests share it with the test process.
"""

import json
import os
import tempfile

from jobsite.settings import *  # noqa: F403
from jobsite.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_rq", "tests.testapp"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Expected times are written in UTC; tests of other zones set theirs (timezone.override, a
# schedule's timezone), so a developer's DJANGO_TIME_ZONE must not move them.
TIME_ZONE = "UTC"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"scheduler-tests-{os.getpid()}.sqlite3"),
    }

# End-to-end tests hand a daemon process its own SCHEDULER settings through this variable.
SCHEDULER = json.loads(os.environ.get("SCHEDULER_TEST_SETTINGS", "{}"))

# The "tasks" executor on the database backend ("default", from jobsite) or on RQ; the
# Redis server is the one tests/redis_server.py starts.
TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend"},
    "rq": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]},
}
RQ_QUEUES = {
    "default": {
        "URL": os.environ.get("SCHEDULER_TEST_REDIS_URL", "redis://127.0.0.1:1/0"),
        # The run's own timeout stops a command; RQ's would kill the worker under it.
        "DEFAULT_TIMEOUT": -1,
    }
}

# End-to-end tests read a daemon's mail from files in this directory.
if os.environ.get("SCHEDULER_TEST_MAIL_DIR"):
    ADMINS = [("Ops", "ops@example.com")]
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = os.environ["SCHEDULER_TEST_MAIL_DIR"]
