import django
import pytest

from scheduler import compat


@pytest.mark.parametrize(
    ("version", "package"),
    [
        ((5, 2, 8, "final", 0), "django_tasks"),
        ((6, 0, 0, "final", 0), "django.tasks"),
        ((6, 1, 0, "alpha", 0), "django.tasks"),
    ],
)
def test_tasks_framework_comes_from_django_from_6_0_and_the_backport_before(version, package):
    assert compat.tasks_package(version) == package


def test_this_django_gets_the_tasks_framework_of_its_version():
    tasks = pytest.importorskip(compat.tasks_package(django.VERSION))
    assert compat.task is tasks.task
    assert compat.task_backends is tasks.task_backends
    assert compat.TaskResultStatus is tasks.TaskResultStatus
