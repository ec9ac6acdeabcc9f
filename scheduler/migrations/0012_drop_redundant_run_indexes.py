"""Drop the indexes on ``Run.schedule`` alone and ``Run.status`` alone.

Other indexes begin with each (``scheduler_run_sched_status``,
``scheduler_run_status_latest``), and every index is one more write for each run claimed
and finished. They are dropped by name rather than by altering the fields, which on
SQLite would copy the whole table.
"""

import django.db.models.deletion
from django.db import migrations, models

SINGLE_COLUMNS = ("schedule_id", "status")


def drop_single_column_indexes(apps, schema_editor):
    """Drop Django's own indexes on ``schedule_id`` alone and on ``status`` alone.

    On PostgreSQL ``status`` has two (the second for ``LIKE``). They are found by
    introspection and dropped by name; an index of the project's own, named otherwise,
    stays.
    """
    run = apps.get_model("scheduler", "Run")
    table = run._meta.db_table
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in sorted(constraints.items()):
        columns = info["columns"] or []
        if (
            info["index"]
            and not info["unique"]
            and not info["primary_key"]
            and len(columns) == 1
            and columns[0] in SINGLE_COLUMNS
            and name.startswith(f"{table}_{columns[0]}_")
        ):
            schema_editor.remove_index(run, models.Index(fields=[columns[0]], name=name))


def add_single_column_indexes(apps, schema_editor):
    """Index ``schedule_id`` and ``status`` alone again, as before this migration."""
    run = apps.get_model("scheduler", "Run")
    table = run._meta.db_table
    indexes = [
        models.Index(fields=["schedule"], name=f"{table}_schedule_id_idx"),
        models.Index(fields=["status"], name=f"{table}_status_idx"),
    ]
    if schema_editor.connection.vendor == "postgresql":
        indexes.append(
            models.Index(
                fields=["status"], name=f"{table}_status_like", opclasses=["varchar_pattern_ops"]
            )
        )
    for index in indexes:
        schema_editor.add_index(run, index)


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0011_daemons_divide_schedules"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(
                    drop_single_column_indexes,
                    add_single_column_indexes,
                    hints={"model_name": "run"},
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="run",
                    name="schedule",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="runs",
                        to="scheduler.schedule",
                    ),
                ),
                migrations.AlterField(
                    model_name="run",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("timed_out", "Timed out"),
                            ("interrupted", "Interrupted"),
                            ("skipped", "Skipped"),
                        ],
                        max_length=16,
                    ),
                ),
            ],
        ),
    ]
