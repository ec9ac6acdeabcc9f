"""Settings for the test suite: the project's own, plus a module of misbehaving commands."""

from jobsite.settings import *  # noqa: F403
from jobsite.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

SCHEDULER = {
    "ALLOWED_COMMANDS": None,
}
