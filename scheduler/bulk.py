"""Write rows of a model with statements built once, not compiled by the ORM each time.

Django's ``bulk_update`` builds a ``CASE`` with one branch per row for every field; for
the thousand rows of a burst, compiling that costs far more than the database's work,
under the GIL the runs need too. ``executemany`` hands the driver one statement and the
rows' values (SQLite steps it in C; psycopg 3 sends the rows together). Upserts, and
inserts outside PostgreSQL, send many rows in one ``VALUES`` list, the statement for a
batch of that size built once; inserts on PostgreSQL send one array per column. For one
row, the ORM's insert or update costs several times what the database does with it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from django.db import NotSupportedError, connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.constants import OnConflict
from django.db.models.fields import NOT_PROVIDED
from django.db.transaction import TransactionManagementError


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
    number of rows changed. Without ``where``, run it in the transaction that chose the
    rows; with it, one row's update is safe on its own.
    """
    connection = connections[using or router.db_for_write(model)]
    quote = connection.ops.quote_name
    columns = [_field(model, name) for name in fields]
    tests, fixed = _conditions(model, where, connection)
    pk = model._meta.pk
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET {assignments} "
        f"WHERE {quote(pk.column)} = %s{tests}"
    )
    params = [
        [*_prepared(columns, values, connection), pk.get_db_prep_save(key, connection), *fixed]
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


def lock_by_pk(
    model: type[models.Model],
    keys: Iterable[Any],
    *,
    where: Mapping[str, Any] | None = None,
    using: str | None = None,
) -> list[Any]:
    """Lock the rows of ``keys`` whose fields equal ``where``; return their keys, in order.

    The keys are returned as the database driver gives them, without the field's
    converters (right for integer keys).

    Rows are locked in key order, so two transactions locking overlapping rows cannot
    deadlock. On PostgreSQL the lock is ``FOR NO KEY UPDATE``: rows referring to these by
    foreign key can still be written. Run it inside ``transaction.atomic()``.
    """
    connection = connections[using or router.db_for_write(model)]
    if not connection.in_atomic_block:
        raise TransactionManagementError("lock_by_pk() locks nothing outside a transaction")
    quote = connection.ops.quote_name
    pk = model._meta.pk
    tests, fixed = _conditions(model, where, connection)
    features = connection.features
    lock = ""
    if features.has_select_for_no_key_update:
        lock = " FOR NO KEY UPDATE"
    elif features.has_select_for_update:
        lock = " FOR UPDATE"
    per_statement = max(1, (features.max_query_params or 10_000) - len(fixed))
    ordered = sorted(keys)
    found: list[Any] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), per_statement):
            chunk = ordered[start : start + per_statement]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {quote(pk.column)} FROM {quote(model._meta.db_table)} "
                f"WHERE {quote(pk.column)} IN ({marks}){tests} ORDER BY 1{lock}",
                [*(pk.get_db_prep_value(key, connection) for key in chunk), *fixed],
            )
            found.extend(row[0] for row in cursor.fetchall())
    return found


def insert(obj: models.Model, *, using: str | None = None) -> None:
    """Insert ``obj`` as a new row and set the key the database gave it.

    What ``save(force_insert=True)`` writes for a plain model (one table, values set in
    Python, the key the only value the database chooses), with the statement built once
    per model and database; other models are refused. No ``pre_save`` or ``post_save``
    signal is sent. A conflict raises Django's ``IntegrityError``, as a save does.
    """
    insert_many([obj], using=using)


def insert_many(objs: Sequence[models.Model], *, using: str | None = None) -> None:
    """Insert ``objs``, all of one plain model, and set the keys the database gave them.

    :func:`insert` for many rows, in statements built once. On PostgreSQL, up to 5,000
    rows go in one statement as one array per column, unnested (planned far faster than
    as many rows of ``VALUES``, as ``bulk_create`` does there too). Otherwise, and for a
    field that cannot be an array, rows go in batches of ``VALUES``; one row per
    statement where the database cannot return the keys of a multi-row insert. A
    conflict raises ``IntegrityError``; rows of statements sent before it stay written
    unless the caller's transaction is rolled back.
    """
    if not objs:
        return
    model = type(objs[0])
    for obj in objs:
        if type(obj) is not model:
            raise ValueError(
                f"insert_many() takes one model, not {model.__name__} and {type(obj).__name__}"
            )
        if obj.pk is not None:
            raise ValueError(f"{model.__name__} {obj.pk!r} has a primary key already")
    using = using or router.db_for_write(model, instance=objs[0])
    connection = connections[using]
    vendor = connection.vendor
    one_row, fields, returns_pk = _insert_statement(model, using, vendor, 1)
    per_statement, arrays = 1, None
    if len(objs) > 1 and returns_pk and connection.features.can_return_rows_from_bulk_insert:
        if vendor == "postgresql":
            arrays = _array_statement(model, using, vendor)
        per_statement = _MANY if arrays else _rows_per_statement(connection, len(fields))
    pk = model._meta.pk
    with connection.cursor() as cursor:
        for start in range(0, len(objs), per_statement):
            batch = objs[start : start + per_statement]
            rows = [
                [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
                for obj in batch
            ]
            if len(batch) == 1:
                cursor.execute(one_row, rows[0])
            elif arrays:
                cursor.execute(arrays, [list(column) for column in zip(*rows, strict=True)])
            else:
                sql, _, _ = _insert_statement(model, using, vendor, len(batch))
                cursor.execute(sql, [value for row in rows for value in row])
            if returns_pk:
                # In the order the rows were given, as bulk_create takes them too.
                keys = [row[0] for row in cursor.fetchall()]
            else:
                keys = [connection.ops.last_insert_id(cursor, model._meta.db_table, pk.column)]
            for obj, key in zip(batch, keys, strict=True):
                setattr(obj, pk.attname, key)
                obj._state.adding = False
                obj._state.db = using


def upsert(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    unique: Sequence[str],
    using: str | None = None,
) -> None:
    """Insert rows of ``fields`` values; one that matches a stored row on ``unique``
    updates that row's other fields instead.

    What ``bulk_create(update_conflicts=True)`` does, without a model instance per row
    or compiling each batch: the statement for a full batch is built once.
    """
    using = using or router.db_for_write(model)
    connection = connections[using]
    features = connection.features
    if not (features.supports_update_conflicts and features.supports_update_conflicts_with_target):
        raise NotSupportedError(f"{connection.display_name} cannot update a row on a conflict")
    if set(fields) <= set(unique):
        raise ValueError("upsert() needs a field to update besides the unique ones")
    columns = [_field(model, name) for name in fields]
    per_statement = _rows_per_statement(connection, len(fields))
    values = [_prepared(columns, row, connection) for row in rows]
    with connection.cursor() as cursor:
        for start in range(0, len(values), per_statement):
            batch = values[start : start + per_statement]
            sql = _upsert_statement(
                model, tuple(fields), tuple(unique), len(batch), using, connection.vendor
            )
            cursor.execute(sql, [value for row in batch for value in row])


@functools.lru_cache(maxsize=16)
def _upsert_statement(
    model: type[models.Model],
    fields: tuple[str, ...],
    unique: tuple[str, ...],
    count: int,
    using: str,
    vendor: str,
) -> str:
    """Return the ``INSERT … ON CONFLICT`` of ``count`` rows."""
    connection = connections[using]
    quote = connection.ops.quote_name
    written = [_field(model, name) for name in fields]
    columns = [field.column for field in written]
    keys = [_field(model, name).column for name in unique]
    updated = [column for column in columns if column not in keys]
    conflict = connection.ops.on_conflict_suffix_sql(written, OnConflict.UPDATE, updated, keys)
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(map(quote, columns))}) "
        f"{_values(len(columns), count)} {conflict}"
    )


# Rows per statement of arrays: any number fits in one; this bounds its size.
_MANY = 5000


def _rows_per_statement(connection: BaseDatabaseWrapper, width: int) -> int:
    """Return how many rows of ``width`` values one ``VALUES`` list may carry."""
    return max(1, min(500, (connection.features.max_query_params or 10_000) // width))


def _values(width: int, count: int) -> str:
    """Return a ``VALUES`` list of ``count`` rows of ``width`` placeholders."""
    row = "(" + ", ".join(["%s"] * width) + ")"
    return f"VALUES {', '.join([row] * count)}"


@functools.lru_cache(maxsize=16)
def _insert_statement(
    model: type[models.Model], using: str, vendor: str, count: int
) -> tuple[str, list[models.Field[Any, Any]], bool]:
    """Return the ``INSERT`` of ``count`` rows of ``VALUES``, its fields in order, and if
    it returns the keys."""
    fields = _inserted_fields(model)
    sql = _insert_sql(model, using, fields, _values(len(fields), count))
    return sql, fields, connections[using].features.can_return_columns_from_insert


@functools.lru_cache(maxsize=16)
def _array_statement(model: type[models.Model], using: str, vendor: str) -> str | None:
    """Return the ``INSERT`` of one PostgreSQL array per column, unnested; None if a field
    cannot be an array."""
    fields = _inserted_fields(model)
    types = _array_types(fields, connections[using])
    if types is None:
        return None
    arrays = ", ".join(f"(%s)::{db_type}[]" for db_type in types)
    return _insert_sql(model, using, fields, f"SELECT * FROM UNNEST({arrays})")


def _inserted_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """Return the fields an insert of ``model`` writes, in order; refuse a model that is not
    plain (one table, values set in Python, an automatic key the only value the database
    chooses)."""
    meta = model._meta
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    computed = any(
        getattr(field, "generated", False) or field.db_default is not NOT_PROVIDED
        for field in fields
    )
    if meta.parents or computed or not fields or meta.auto_field is None:
        raise ValueError(f"{model.__name__} is not a plain model: save it through the ORM")
    return fields


def _insert_sql(
    model: type[models.Model], using: str, fields: Sequence[models.Field[Any, Any]], rows: str
) -> str:
    """Return the ``INSERT`` of ``fields`` from ``rows`` (its ``VALUES`` or ``SELECT``),
    returning the key where the database can."""
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = model._meta
    columns = ", ".join(quote(field.column) for field in fields)
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) {rows}"
    if connection.features.can_return_columns_from_insert:
        # Named returning_columns from Django 6.0 on.
        returning_columns = getattr(connection.ops, "returning_columns", None)
        returning, _ = (returning_columns or connection.ops.return_insert_columns)([meta.pk])
        sql = f"{sql} {returning}"
    return sql


def _array_types(
    fields: Sequence[models.Field[Any, Any]], connection: BaseDatabaseWrapper
) -> list[str] | None:
    """Return the PostgreSQL type of each field's array; None if one cannot be an array.

    The rules ``bulk_create`` applies: each value needs the plain placeholder and a type
    of the backend's own (a custom field's may not make an array).
    """
    types = []
    for field in fields:
        target = field.target_field if isinstance(field, models.ForeignObject) else field
        if hasattr(field, "get_placeholder") or target.get_internal_type() not in (
            connection.data_types
        ):
            return None
        types.append(str(field.db_type(connection)).split("(")[0])
    return types


def _conditions(
    model: type[models.Model], where: Mapping[str, Any] | None, connection: BaseDatabaseWrapper
) -> tuple[str, list[Any]]:
    """Return the SQL (`` AND column = %s`` each) and the prepared values of ``where``.

    None is refused: ``= NULL`` would match nothing.
    """
    quote = connection.ops.quote_name
    sql, values = "", []
    for name, value in (where or {}).items():
        if value is None:
            raise ValueError(f"{name}=None: a condition here is an equality, never IS NULL")
        field = _field(model, name)
        sql += f" AND {quote(field.column)} = %s"
        values.append(field.get_db_prep_save(value, connection))
    return sql, values


def _prepared(
    fields: Sequence[models.Field[Any, Any]], values: Sequence[Any], connection: BaseDatabaseWrapper
) -> list[Any]:
    """Return ``values`` prepared as the ORM prepares each field's value for a save."""
    return [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, values, strict=True)
    ]


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    return cast("models.Field[Any, Any]", model._meta.get_field(name))
