# Two entry points: `make run` (scheduler with the example schedules on SQLite) and
# `make test` (the fast and the end-to-end tests, on SQLite and on a throwaway PostgreSQL
# server).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[example,rq,test]"

run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py load_example_schedules
	$(BIN)/python manage.py runscheduler

# Style, types (mypy strict, pyproject.toml) and the layering (import-linter contracts,
# pyproject.toml), then Django's checks and missing migrations.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python manage.py check --fail-level WARNING
	$(BIN)/python manage.py makemigrations --check --dry-run

# Plain pytest runs the fast tests (not marked e2e); `-m e2e` the end-to-end ones, `-m ""`
# both. The fast tests run twice more with the clock a year and half a year ahead (the
# other daylight-saving season): a test that holds only on today's date fails now, not
# later. End-to-end tests keep the real clock (their daemons cannot be moved).
test: lint
	$(BIN)/pytest
	$(BIN)/pytest -m e2e
	$(BIN)/pytest --clock-offset-days 365
	$(BIN)/pytest --clock-offset-days 183
	$(BIN)/python -m tests.postgres $(BIN)/pytest -m ""

# One table of this scheduler against cron-style fresh processes and django-apscheduler's
# recommended pattern (also bench/results.json): on its own SQLite file, then on a throwaway
# PostgreSQL server started as the tests start one. About 35 minutes.
bench: install
	$(BIN)/python -m bench --both
