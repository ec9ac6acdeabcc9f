"""Update rows of a model by primary key, one statement executed for each row.

Django's ``bulk_update`` builds a ``CASE`` with one branch per row for every field; for
the thousand rows of a burst, compiling that costs far more than the database's work,
under the GIL the runs need too. ``executemany`` hands the driver one statement and the
rows' values (SQLite steps it in C; psycopg sends it in a pipeline).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from django.db import connections, models, router


def update_by_pk(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Iterable[tuple[Any, Sequence[Any]]],
    *,
    where: Mapping[str, Any] | None = None,
    using: str | None = None,
) -> int:
    """Set ``fields`` of each row ``(pk, values)`` to its values, in that order.

    Values are prepared as the ORM prepares them for a save. A row that no longer exists,
    or whose fields do not equal ``where`` (``{field: value}``), is left alone. Return the
    number of rows changed. Run it in the transaction that chose the rows.
    """
    connection = connections[using or router.db_for_write(model)]
    quote = connection.ops.quote_name
    columns = [_field(model, name) for name in fields]
    conditions = [(_field(model, name), value) for name, value in (where or {}).items()]
    pk = model._meta.pk
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    tests = "".join(f" AND {quote(field.column)} = %s" for field, _ in conditions)
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET {assignments} "
        f"WHERE {quote(pk.column)} = %s{tests}"
    )
    fixed = [field.get_db_prep_save(value, connection) for field, value in conditions]
    params = [
        [
            *(
                field.get_db_prep_save(value, connection)
                for field, value in zip(columns, values, strict=True)
            ),
            pk.get_db_prep_save(key, connection),
            *fixed,
        ]
        for key, values in rows
    ]
    if not params:
        return 0
    with connection.cursor() as cursor:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)
        return int(cursor.rowcount)


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    return cast("models.Field[Any, Any]", model._meta.get_field(name))
