"""New rows of one mapped class written in one statement on PostgreSQL, then attached to the
session as if they had been loaded.

The ORM's multi-row INSERT sends one placeholder per value, and the driver parses such a
statement (thousands of placeholders for a batch of cases) on every call: that parsing and
the flush's bookkeeping cost more than the writing. Here the rows go as one JSON document
through `json_populate_recordset`, whose values `json.dumps` writes in C. A value already
encoded as JSON (an engine state) is spliced into the document as it is.

Text holding an unpaired surrogate (a script may leave one in its data) cannot be sent as
UTF-8, and PostgreSQL refuses one escaped inside a document it takes apart; such a value is
written escaped by an UPDATE of its row instead, where a plain cast keeps it as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import MANYTOONE, make_transient_to_detached

from app.extensions import db
from app.models.base import utc_text

_SURROGATE = re.compile("[\ud800-\udfff]")


def _value(value: Any) -> Any:
    return utc_text(value) if isinstance(value, datetime) else value


def _fill_defaults(obj: Any, mapper: Any, keys: Sequence[tuple[str, Any]]) -> None:
    """Give every column attribute a value, as the ORM's INSERT would: the key of an object
    set on a many-to-one relationship, its scalar default, else None. (An attribute left out
    would be expired once attached, and read back with a query when touched.)"""
    values = obj.__dict__
    for relationship in mapper.relationships:
        target = values.get(relationship.key)
        if target is None or relationship.direction is not MANYTOONE:
            continue
        for local, remote in relationship.local_remote_pairs:
            setattr(obj, mapper.get_property_by_column(local).key,
                    getattr(target, inspect(type(target)).get_property_by_column(remote).key))
    for key, column in keys:
        if key in values:
            continue
        default = column.default
        if default is not None and not default.is_scalar:
            raise ValueError(f"{type(obj).__name__}.{key} needs a value: its default is "
                             "computed by the ORM")
        setattr(obj, key, default.arg if default is not None else None)


def insert_new(objects: Sequence[Any], *, encoded: Mapping[str, Sequence[str]] | None = None,
               attach: bool = True) -> None:
    """INSERT `objects` (new, of one mapped class, not in the session) in one statement and
    make them persistent in the session (`attach=False`: only write them; rows nobody reads
    back in this transaction). Objects without a primary key get one from the table's
    sequence. `encoded`: column attribute -> JSON text per object, in order, for values
    already encoded (left unloaded on the objects, as a deferred column is). On other
    databases the objects join the session, which writes them at its next flush."""
    if not objects:
        return
    encoded = encoded or {}
    if db.session.get_bind().dialect.name != "postgresql":
        # Elsewhere the session writes them at its next flush.
        for key, texts in encoded.items():
            for obj, text in zip(objects, texts, strict=True):
                setattr(obj, key, json.loads(text))
        db.session.add_all(objects)
        return
    mapper = inspect(type(objects[0]))
    table = mapper.local_table
    (pk_column,) = mapper.primary_key
    pk = mapper.get_property_by_column(pk_column).key
    with_ids = getattr(objects[0], pk, None) is not None
    keys = [(prop.key, prop.columns[0]) for prop in mapper.column_attrs
            if prop.key not in encoded and (with_ids or prop.key != pk)]
    names = [column.name for _, column in keys] + [
        mapper.get_property(key).columns[0].name for key in encoded]
    # Values to be written after the insert, by row: (index, column, escaped text).
    unpaired = [(n, mapper.get_property(key).columns[0], json.dumps(json.loads(text)))
                for key, texts in encoded.items() for n, text in enumerate(texts)
                if _SURROGATE.search(text)]
    if unpaired:
        encoded = {key: ["{}" if _SURROGATE.search(text) else text for text in texts]
                   for key, texts in encoded.items()}
    parts = []
    for n, obj in enumerate(objects):
        _fill_defaults(obj, mapper, keys)
        values = obj.__dict__
        text = json.dumps({column.name: _value(values[key]) for key, column in keys},
                          ensure_ascii=False, allow_nan=False)
        if encoded:
            text = text[:-1] + "".join(
                f",{json.dumps(mapper.get_property(key).columns[0].name)}:{texts[n]}"
                for key, texts in encoded.items()) + "}"
        parts.append(text)
    dialect = db.session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    table_name, columns = quote(table.name), ", ".join(quote(name) for name in names)
    statement = (f"INSERT INTO {table_name} ({columns}) SELECT {columns} "
                 f"FROM json_populate_recordset(NULL::{table_name}, %s::json) "
                 "WITH ORDINALITY AS r ORDER BY r.ordinality")
    connection = db.session.connection()
    document = "[" + ",".join(parts) + "]"
    if with_ids or (not attach and not unpaired):
        connection.exec_driver_sql(statement, (document,))
    else:
        # The sequence numbers the rows in the order of the SELECT, so the sorted ids are
        # the objects' ids in order (what SQLAlchemy's own sorted bulk insert relies on).
        ids = sorted(connection.exec_driver_sql(
            statement + f" RETURNING {quote(pk_column.name)}", (document,)).scalars())
        for obj, new_id in zip(objects, ids, strict=True):
            setattr(obj, pk, new_id)
    for n, column, text in unpaired:
        connection.exec_driver_sql(
            f"UPDATE {table_name} SET {quote(column.name)} = "
            f"%s::{column.type.compile(dialect=dialect)} WHERE {quote(pk_column.name)} = %s",
            (text, getattr(objects[n], pk)))
    if not attach:
        return
    for obj in objects:
        make_transient_to_detached(obj)
        db.session.add(obj)
