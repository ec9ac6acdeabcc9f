"""Update many rows of a model by primary key, one statement executed for each row.

Django's ``bulk_update`` builds a ``CASE`` with one branch per row for every field; for
the thousand rows of a burst, compiling that costs far more than the database's work,
under the GIL the runs need too. ``executemany`` hands the driver one statement and the
rows' values (SQLite steps it in C; psycopg sends it in a pipeline).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from django.db import connections, models, router


def update_by_pk(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Iterable[tuple[Any, Sequence[Any]]],
    *,
    using: str | None = None,
) -> None:
    """Set ``fields`` of each row ``(pk, values)`` to its values, in that order.

    Values are prepared as the ORM prepares them for a save. A row that no longer exists
    is left alone, as with ``bulk_update``. Run it in the transaction that chose the rows.
    """
    connection = connections[using or router.db_for_write(model)]
    quote = connection.ops.quote_name
    columns = [cast("models.Field[Any, Any]", model._meta.get_field(name)) for name in fields]
    pk = model._meta.pk
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(pk.column)} = %s"
    params = [
        [
            *(
                field.get_db_prep_save(value, connection)
                for field, value in zip(columns, values, strict=True)
            ),
            pk.get_db_prep_save(key, connection),
        ]
        for key, values in rows
    ]
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)
