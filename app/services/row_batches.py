"""New rows of one mapped class written in one statement on PostgreSQL, then attached to the
session as if they had been loaded.

The ORM's multi-row INSERT sends one placeholder per value, and the driver parses such a
statement (thousands of placeholders for a batch of cases) on every call: that parsing and
the flush's bookkeeping cost more than the writing. Here the rows go as one JSON document
through `json_populate_recordset`, whose values `json.dumps` writes in C. A value already
encoded as JSON (an engine state) is spliced into the document as it is.

`WriteBehind` sends such statements from a helper thread on the session's own connection, so
that PostgreSQL writes one part of a batch while this thread prepares the next (the engine's
work for the next cases).

Text holding an unpaired surrogate (a script may leave one in its data) cannot be sent as
UTF-8, and PostgreSQL refuses one escaped inside a document it takes apart; such a value is
written escaped by an UPDATE of its row instead, where a plain cast keeps it as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import exc, inspect
from sqlalchemy.orm import MANYTOONE, make_transient_to_detached

from app.extensions import db
from app.models.base import utc_text

_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_default(value: Any) -> Any:
    """What JSON cannot hold as it is: a moment, written as PostgreSQL reads it."""
    if isinstance(value, datetime):
        return utc_text(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _many_to_one(mapper: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each many-to-one relationship of `mapper`: its key, and (local attribute, attribute of
    the target) for each column it sets."""
    found = []
    for relationship in mapper.relationships:
        if relationship.direction is not MANYTOONE:
            continue
        target = relationship.mapper
        found.append((relationship.key, [
            (mapper.get_property_by_column(local).key,
             target.get_property_by_column(remote).key)
            for local, remote in relationship.local_remote_pairs]))
    return found


def _fill_defaults(obj: Any, relationships: list[tuple[str, list[tuple[str, str]]]],
                   keys: Sequence[tuple[str, Any]]) -> None:
    """Give every column attribute a value, as the ORM's INSERT would: the key of an object
    set on a many-to-one relationship, its scalar default, else None. (An attribute left out
    would be expired once attached, and read back with a query when touched.)"""
    values = obj.__dict__
    for key, pairs in relationships:
        target = values.get(key)
        if target is None:
            continue
        for local, remote in pairs:
            setattr(obj, local, getattr(target, remote))
    for key, column in keys:
        if key in values:
            continue
        default = column.default
        if default is not None and not default.is_scalar:
            raise ValueError(f"{type(obj).__name__}.{key} needs a value: its default is "
                             "computed by the ORM")
        setattr(obj, key, default.arg if default is not None else None)


Execute = Callable[[str, tuple[Any, ...]], None]


class WriteBehind:
    """Statements (writes whose results nobody reads) executed in order by a helper thread on
    the session's connection, inside its transaction, while this thread goes on.

    The driver's connection is thread-safe (psycopg serialises its commands): a query this
    thread makes meanwhile waits for the write under way. Nothing else may use the session's
    connection between `pending` and its end, which waits for every write and raises the
    first one's error as SQLAlchemy would have (an IntegrityError for a duplicate key, say).
    If this thread's own work failed meanwhile, the writes are still waited for (a savepoint
    rolled back afterwards undoes them all), and a write's error wins: what failed this
    thread may only be the transaction it aborted. Listeners of the engine's
    `before_cursor_execute` hear of each statement as it is sent. On other databases
    statements run at once, on this thread."""

    def __init__(self) -> None:
        self._connection = db.session.connection()
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []
        self._failed: tuple[str, tuple[Any, ...], BaseException] | None = None

    def execute(self, statement: str, params: tuple[Any, ...]) -> None:
        if self._connection.dialect.name != "postgresql":
            self._connection.exec_driver_sql(statement, params)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="write-behind")
        for listener in self._connection.dispatch.before_cursor_execute:
            # Statement counters hear of it as it is sent (there is no cursor yet).
            listener(self._connection, None, statement, params, None, False)
        raw = self._connection.connection.driver_connection
        self._futures.append(self._executor.submit(self._run, raw, statement, params))

    def _run(self, raw: Any, statement: str, params: tuple[Any, ...]) -> None:
        if self._failed is not None:
            return  # the transaction is aborted: what follows would fail for that alone
        try:
            with raw.cursor() as cursor:
                cursor.execute(statement, params)
        except Exception as error:  # raised on the caller's thread by `wait`
            self._failed = (statement, params, error)

    def wait(self) -> None:
        """Wait for every write sent; raise the first one's error."""
        for future in self._futures:
            future.result()
        self._futures = []
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        if self._failed is not None:
            statement, params, error = self._failed
            self._failed = None
            dialect = self._connection.dialect
            raise exc.DBAPIError.instance(  # the rows' document is not worth printing
                statement, params, error, dialect.loaded_dbapi.Error, hide_parameters=True,
                dialect=dialect) from error

    @contextmanager
    def pending(self) -> Iterator[WriteBehind]:
        """The writes sent within this block are all done (or failed) at its end."""
        try:
            yield self
        except BaseException:
            self.wait()  # a write's error wins over this thread's
            raise
        self.wait()


def insert_new(objects: Sequence[Any], *, encoded: Mapping[str, Sequence[str]] | None = None,
               attach: bool = True, behind: WriteBehind | None = None) -> None:
    """INSERT `objects` (new, of one mapped class, not in the session) in one statement and
    make them persistent in the session (`attach=False`: only write them; rows nobody reads
    back in this transaction). Objects without a primary key get one from the table's
    sequence. `encoded`: column attribute -> JSON text per object, in order, for values
    already encoded (left unloaded on the objects, as a deferred column is). `behind`: the
    rows go out through it (objects with ids only: nothing is read back). On other
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
    relationships = _many_to_one(mapper)
    named = [(column.name, key) for key, column in keys]
    for n, obj in enumerate(objects):
        _fill_defaults(obj, relationships, keys)
        values = obj.__dict__
        text = json.dumps({name: values[key] for name, key in named}, ensure_ascii=False,
                          allow_nan=False, default=_json_default)
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

    def execute(sql: str, params: tuple[Any, ...]) -> None:
        if behind is not None:
            behind.execute(sql, params)
        else:
            connection.exec_driver_sql(sql, params)

    document = "[" + ",".join(parts) + "]"
    if behind is not None and not with_ids:
        raise ValueError("rows written behind need their ids")
    if with_ids or (not attach and not unpaired):
        execute(statement, (document,))
    else:
        # The sequence numbers the rows in the order of the SELECT, so the sorted ids are
        # the objects' ids in order (what SQLAlchemy's own sorted bulk insert relies on).
        ids = sorted(connection.exec_driver_sql(
            statement + f" RETURNING {quote(pk_column.name)}", (document,)).scalars())
        for obj, new_id in zip(objects, ids, strict=True):
            setattr(obj, pk, new_id)
    for n, column, text in unpaired:
        execute(
            f"UPDATE {table_name} SET {quote(column.name)} = "
            f"%s::{column.type.compile(dialect=dialect)} WHERE {quote(pk_column.name)} = %s",
            (text, getattr(objects[n], pk)))
    if not attach:
        return
    for obj in objects:
        make_transient_to_detached(obj)
        db.session.add(obj)
