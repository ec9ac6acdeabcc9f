"""The deployment files name commands that exist and settings that match the daemon's."""

from __future__ import annotations

import configparser
import shlex

import pytest
import yaml
from django.core.management import get_commands

from scheduler.conf import DEFAULTS
from tests.manage_py import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def manage_py_commands(command) -> list[str]:
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"]:
        return [name for part in words[2].split("&&") for name in manage_py_commands(part)]
    if "manage.py" in words:
        return [words[words.index("manage.py") + 1]]
    return []


@pytest.mark.parametrize("service", sorted(COMPOSE["services"]))
def test_compose_services_run_commands_that_exist(service):
    config = COMPOSE["services"][service]
    commands = manage_py_commands(config.get("command", ""))
    health = config.get("healthcheck", {}).get("test", [])
    commands += manage_py_commands(health[1:] if health[:1] == ["CMD"] else [])
    available = get_commands()
    assert all(name in available for name in commands), commands


def test_scheduler_service_is_health_checked_and_waits_for_migrations():
    scheduler = COMPOSE["services"]["scheduler"]
    assert manage_py_commands(scheduler["healthcheck"]["test"][1:]) == ["schedulerhealth"]
    assert scheduler["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert COMPOSE["services"]["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_the_tasks_profile_adds_two_database_workers_and_switches_the_executor():
    worker = COMPOSE["services"]["worker"]
    assert worker["profiles"] == ["tasks"]
    assert worker["deploy"]["replicas"] == 2
    assert manage_py_commands(worker["command"]) == ["db_worker"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for service in ("web", "scheduler", "worker"):
        env = COMPOSE["services"][service]["environment"]
        assert env["SCHEDULER_EXECUTOR"] == "${SCHEDULER_EXECUTOR:-process}"
    profiled = [name for name, config in COMPOSE["services"].items() if "profiles" in config]
    assert profiled == ["worker"]  # a plain `docker compose up` is as before


def test_stop_grace_periods_outlast_the_daemons_shutdown_grace():
    grace = DEFAULTS["SHUTDOWN_GRACE"] + DEFAULTS["KILL_GRACE"]
    for service in ("scheduler", "worker"):
        compose_grace = COMPOSE["services"][service]["stop_grace_period"]
        assert int(compose_grace.rstrip("s")) > grace
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "deploy" / "runscheduler.service")
    assert int(unit["Service"]["TimeoutStopSec"]) > grace
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["ExecStart"].endswith("manage.py runscheduler")
