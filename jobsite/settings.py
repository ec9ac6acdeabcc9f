"""Settings for the example project that hosts the scheduler.

The database comes from ``DATABASE_URL`` (``postgres://…`` or ``sqlite:///…``); without it
an SQLite file next to ``manage.py`` is used, tuned so that the daemon's threads, the admin
and a second daemon can write at the same time without ``database is locked``.
"""

import os
from pathlib import Path

import dj_database_url
import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-development-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_apscheduler",
    # Django 6.0 has the Tasks framework built in; 5.2 has it from the django-tasks app.
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
    "django_tasks_db",
    "scheduler",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "jobsite.wsgi.application"

# WAL lets readers (admin) proceed while the daemon writes; IMMEDIATE takes the write lock
# at BEGIN so two writers queue on the busy timeout instead of failing mid-transaction.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def database_from_env(url: str | None) -> dict:
    if not url:
        url = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    # Connections are kept for a minute and health-checked before reuse, so the daemon's
    # threads do not pay a reconnect per run.
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    return config


DATABASES = {"default": database_from_env(os.environ.get("DATABASE_URL"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# The "tasks" executor hands runs to this backend; its workers run them:
# `python manage.py db_worker` (see README, "Outgrowing one machine").
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

SCHEDULER: dict = {"EXECUTOR": os.environ.get("SCHEDULER_EXECUTOR", "process")}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "scheduler": {
            "handlers": ["console"],
            "level": os.environ.get("SCHEDULER_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
        "apscheduler": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
