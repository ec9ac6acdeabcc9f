"""The example site's settings on the Django version it runs on."""

from django.conf import settings
from django.core import checks
from django.test import override_settings


def test_a_task_backend_problem_is_reported_once():
    complaining = {"BACKEND": "tests.testapp.backends.ComplainingBackend"}
    with override_settings(TASKS={**settings.TASKS, "complaining": complaining}):
        messages = [message for message in checks.run_checks() if message.id == "testapp.W001"]
    assert len(messages) == 1
