"""On PostgreSQL, NOTIFY running daemons of schedule changes and queued runs.

The database itself signals, so edits made by raw SQL wake the daemons too
(``scheduler.changes``). Other databases get nothing here.
"""

from django.db import migrations

FUNCTION = "scheduler_notify_change"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('scheduler_changes', TG_ARGV[0]);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER scheduler_schedule_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {{schedule}}
    FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}('schedule');

CREATE TRIGGER scheduler_run_queued
    AFTER INSERT OR UPDATE OF status, run_after ON {{run}}
    FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION {FUNCTION}('run');
"""

DROP = f"""
DROP TRIGGER IF EXISTS scheduler_schedule_changed ON {{schedule}};
DROP TRIGGER IF EXISTS scheduler_run_queued ON {{run}};
DROP FUNCTION IF EXISTS {FUNCTION}();
"""


def _execute(sql: str):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        quote = schema_editor.quote_name
        tables = {
            "schedule": quote(apps.get_model("scheduler", "Schedule")._meta.db_table),
            "run": quote(apps.get_model("scheduler", "Run")._meta.db_table),
        }
        schema_editor.execute(sql.format(**tables), params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [("scheduler", "0009_history_indexes")]

    operations = [migrations.RunPython(_execute(CREATE), _execute(DROP), elidable=False)]
