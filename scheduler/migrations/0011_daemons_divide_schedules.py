"""Daemons divide the schedules: record since when a daemon fires them, and on PostgreSQL
NOTIFY the others when a daemon starts or stops firing, or stops (payload ``daemon``),
so they divide again at once (``scheduler.shares``)."""

from django.db import migrations, models

CREATE = """
CREATE TRIGGER scheduler_daemon_changed
    AFTER UPDATE OF firing_since, stopped_at ON {heartbeat}
    FOR EACH ROW WHEN (NEW.kind = 'daemon') EXECUTE FUNCTION scheduler_notify_change('daemon');
"""

DROP = "DROP TRIGGER IF EXISTS scheduler_daemon_changed ON {heartbeat};"


def _execute(sql: str):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = apps.get_model("scheduler", "Heartbeat")._meta.db_table
        schema_editor.execute(sql.format(heartbeat=schema_editor.quote_name(table)), params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0010_change_notifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="heartbeat",
            name="firing_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(_execute(CREATE), _execute(DROP), elidable=False),
    ]
