"""Imported once by the fork server so that every run's child starts with Django ready."""

import django

django.setup()
