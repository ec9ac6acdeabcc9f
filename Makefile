# Two entry points: `make run` (scheduler with the example schedules on SQLite) and
# `make test` (the whole suite, on SQLite and on a throwaway PostgreSQL server).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"

run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py load_example_schedules
	$(BIN)/python manage.py runscheduler

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python manage.py check --fail-level WARNING
	$(BIN)/python manage.py makemigrations --check --dry-run

test: lint
	$(BIN)/pytest
	$(BIN)/python -m tests.postgres $(BIN)/pytest
