"""On PostgreSQL, NOTIFY running daemons of schedule changes and queued runs.

The database itself signals, so edits made by raw SQL wake the daemons too
(``scheduler.changes``): ``schedule:<ids>`` names the rows a statement changed (empty
when too many to name), ``run`` says a run was queued. Other databases get nothing here.
"""

from django.db import migrations

FUNCTION = "scheduler_notify_change"
ROWS_FUNCTION = "scheduler_notify_schedule_rows"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('scheduler_changes', TG_ARGV[0]);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION {ROWS_FUNCTION}() RETURNS trigger AS $$
DECLARE
    ids text;
BEGIN
    SELECT string_agg(id::text, ',') INTO ids FROM changed_rows;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    IF length(ids) > 7000 THEN
        ids := '';
    END IF;
    PERFORM pg_notify('scheduler_changes', 'schedule:' || ids);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER scheduler_schedule_inserted AFTER INSERT ON {{schedule}}
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {ROWS_FUNCTION}();
CREATE TRIGGER scheduler_schedule_updated AFTER UPDATE ON {{schedule}}
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {ROWS_FUNCTION}();
CREATE TRIGGER scheduler_schedule_deleted AFTER DELETE ON {{schedule}}
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {ROWS_FUNCTION}();
CREATE TRIGGER scheduler_schedule_truncated AFTER TRUNCATE ON {{schedule}}
    FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}('schedule');

CREATE TRIGGER scheduler_run_queued
    AFTER INSERT OR UPDATE OF status, run_after ON {{run}}
    FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION {FUNCTION}('run');
"""

DROP = f"""
DROP TRIGGER IF EXISTS scheduler_schedule_inserted ON {{schedule}};
DROP TRIGGER IF EXISTS scheduler_schedule_updated ON {{schedule}};
DROP TRIGGER IF EXISTS scheduler_schedule_deleted ON {{schedule}};
DROP TRIGGER IF EXISTS scheduler_schedule_truncated ON {{schedule}};
DROP TRIGGER IF EXISTS scheduler_run_queued ON {{run}};
DROP FUNCTION IF EXISTS {FUNCTION}();
DROP FUNCTION IF EXISTS {ROWS_FUNCTION}();
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
