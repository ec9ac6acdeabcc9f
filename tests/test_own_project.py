"""The README's "Add it to your project", done as a new user would, from the built wheel.

The wheel goes into a fresh virtualenv (its dependencies from the package index), a stock
``django-admin startproject`` site gets an app with a command and only the lines the README
gives, and two daemons share the SQLite settings as they come; the README's SQLite line
then silences the check's warning.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import venv
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e

APPS_LINES = '    "django_apscheduler",\n    "scheduler",\n'
URL_LINE = 'urlpatterns += [path("scheduler/", include("scheduler.urls"))]'
SQLITE_LINE = 'DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}'


def clean_env() -> dict[str, str]:
    """The test's environment without its own import path: only the wheel is installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    return env


COMMAND = """from django.core.management.base import BaseCommand


class Command(BaseCommand):
    def handle(self, *args, **options):
        self.stdout.write("tick")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built as a release would be."""
    if connection.vendor != "sqlite":
        pytest.skip("runs once, on the SQLite leg: the stock project has its own database")
    out = tmp_path_factory.mktemp("dist")
    # The wheel is built from the sdist, as a release is: a build/ folder left in the
    # checkout by an earlier build cannot leak into it.
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """A stock project with an app and a command, set up by the README's lines only."""
    base = tmp_path_factory.mktemp("own")
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    python = base / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel],
        check=True,
        env=clean_env(),
    )
    project = base / "mysite"
    project.mkdir()
    admin = base / "venv" / "bin" / "django-admin"
    subprocess.run([admin, "startproject", "mysite", project], check=True, env=clean_env())
    subprocess.run(
        [python, "manage.py", "startapp", "myapp"], cwd=project, check=True, env=clean_env()
    )
    commands = project / "myapp" / "management" / "commands"
    commands.mkdir(parents=True)
    (commands.parent / "__init__.py").touch()
    (commands / "__init__.py").touch()
    (commands / "tick.py").write_text(COMMAND)
    return project


def add_to_settings(project: Path, lines: str) -> None:
    """Paste ``lines`` at the end of the stock INSTALLED_APPS list."""
    settings = project / "mysite" / "settings.py"
    text, count = re.subn(
        r"(INSTALLED_APPS = \[\n(?:    .*\n)*)\]", rf"\g<1>{lines}]", settings.read_text()
    )
    assert count == 1
    settings.write_text(text)


def manage(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [project.parent / "venv" / "bin" / "python", "manage.py", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=check,
        env=clean_env(),
    )


def test_readme_gives_the_lines_this_test_adds():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Add it to your project", 1)[1].split("\n## ", 1)[0]
    assert APPS_LINES in section
    assert URL_LINE in section
    assert SQLITE_LINE in section
    assert "python manage.py migrate" in section
    assert "python manage.py runscheduler" in section


def test_wheel_installs_only_the_scheduler_app(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"scheduler"}
    assert "scheduler/py.typed" in names
    assert "scheduler/migrations/0001_initial.py" in names
    assert any(name.startswith("scheduler/templates/admin/") for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    required = [
        line.split(":", 1)[1].strip()
        for line in metadata.decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(re.split(r"[<>=\[ ]", req)[0].lower() for req in required) == [
        "apscheduler",
        "cron-descriptor",
        "cronsim",
        "django",
        "django-apscheduler",
        "prometheus-client",
    ]


def test_stock_project_runs_two_daemons_on_its_sqlite_file(site):
    add_to_settings(site, '    "scheduler",\n')
    missing = manage(site, "check", check=False)
    assert missing.returncode != 0
    assert "scheduler.E020" in missing.stderr
    assert '"django_apscheduler",' in missing.stderr
    assert "Traceback" not in missing.stderr
    daemon = manage(site, "runscheduler", check=False)
    assert daemon.returncode != 0
    assert "scheduler.E020" in daemon.stderr
    assert "Traceback" not in daemon.stderr

    (site / "mysite" / "settings.py").write_text(
        (site / "mysite" / "settings.py").read_text().replace('    "scheduler",\n', "", 1)
    )
    add_to_settings(site, APPS_LINES + '    "myapp",\n')
    urls = site / "mysite" / "urls.py"
    urls.write_text(
        urls.read_text().replace(
            "from django.urls import path", "from django.urls import include, path"
        )
        + URL_LINE
        + "\n"
    )
    manage(site, "migrate")
    checked = manage(site, "check")
    assert "scheduler.W010" in checked.stderr
    manage(
        site,
        "shell",
        "-c",
        "from scheduler.models import Schedule; "
        "Schedule.objects.create(name='tick', command='tick', interval=1)",
    )

    logs = [site / f"daemon-{n}.log" for n in (1, 2)]
    daemons = [
        subprocess.Popen(
            [site.parent / "venv" / "bin" / "python", "manage.py", "runscheduler"],
            cwd=site,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=clean_env(),
        )
        for log in logs
    ]
    try:
        for log in logs:
            wait_for(lambda log=log: "Scheduler started" in log.read_text(), timeout=30)
        time.sleep(8)
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
    output = [log.read_text() for log in logs]

    runs = json.loads(
        manage(
            site,
            "shell",
            "-c",
            "import json; from scheduler.models import Run; print(json.dumps(["
            "[r.scheduled_for.isoformat(), r.status] "
            "for r in Run.objects.order_by('scheduled_for')]))",
        ).stdout.splitlines()[-1]
    )
    fires = [datetime.fromisoformat(fire) for fire, _ in runs]
    assert len(fires) >= 5, runs
    assert len(set(fires)) == len(fires)
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(fires)), runs
    assert {status for _, status in runs} <= {"succeeded", "skipped"}, runs
    for text in output:
        assert "Scheduler started with 1 enabled schedule(s)" in text, text
        assert "Scheduler stopped" in text, text
        assert "locked" not in text, text
        assert "Traceback" not in text, text
    both = "\n".join(output)
    assert re.search(r"Run \d+ of tick started: tick", both), both
    assert re.search(r"Run \d+ of tick succeeded in", both), both

    settings = site / "mysite" / "settings.py"
    settings.write_text(f"{settings.read_text()}\n{SQLITE_LINE}\n")
    assert "scheduler.W010" not in manage(site, "check").stderr
