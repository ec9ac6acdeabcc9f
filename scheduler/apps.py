from django.apps import AppConfig
from django.db.backends.signals import connection_created


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, history  # noqa: F401
        from .notifications import mail_admins_about_run
        from .signals import run_finished
        from .sqlite import tune_connection

        run_finished.connect(mail_admins_about_run, dispatch_uid="scheduler.mail_admins")
        connection_created.connect(tune_connection, dispatch_uid="scheduler.tune_sqlite")
        history.connect()
