"""The benchmark's app: a command that does nothing, and the django-apscheduler peer."""
