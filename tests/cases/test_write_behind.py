"""Writes sent behind the caller's back (`row_batches.WriteBehind`): in order, inside the
session's transaction, and failing as the same statement run in place would have."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import CaseNumber
from app.services.row_batches import WriteBehind

_INSERT = "INSERT INTO case_number (prefix, year, last) VALUES (%s, %s, %s)"
_UPDATE = "UPDATE case_number SET last = last * 10 + %s WHERE prefix = %s AND year = %s"


def _driver(statement: str) -> str:
    """The statement in the driver's placeholders."""
    return statement if db.engine.dialect.paramstyle != "qmark" else statement.replace("%s", "?")


def _numbers() -> dict[str, int]:
    return {row.prefix: row.last for row in db.session.scalars(
        select(CaseNumber).where(CaseNumber.prefix.like("WB%")))}


def test_writes_run_in_order_inside_the_transaction(app, dbconn):
    with app.app_context():
        behind = WriteBehind()
        threads: set[str] = set()
        sa.event.listen(db.engine, "before_cursor_execute",
                        lambda *_: threads.add(threading.current_thread().name))
        with behind.pending():
            behind.execute(_driver(_INSERT), ("WB1", 2026, 1))
            for digit in (2, 3, 4):  # each update reads what the one before wrote
                behind.execute(_driver(_UPDATE), (digit, "WB1", 2026))
            # A query meanwhile waits for the writes under way, and sees what they wrote.
            assert db.session.scalar(select(CaseNumber.last).where(
                CaseNumber.prefix == "WB1")) in (1, 12, 123, 1234)
        assert _numbers() == {"WB1": 1234}
        assert threads == {threading.current_thread().name}  # counters heard of each
        db.session.rollback()
        assert _numbers() == {}


def test_a_failed_write_raises_as_sqlalchemy_would_and_stops_the_rest(app, dbconn):
    with app.app_context():
        db.session.execute(sa.text("SAVEPOINT before_writes"))
        behind = WriteBehind()
        with pytest.raises(IntegrityError) as raised, behind.pending():
            behind.execute(_driver(_INSERT), ("WB2", 2026, 1))
            behind.execute(_driver(_INSERT), ("WB2", 2026, 2))  # the same key again
            behind.execute(_driver(_INSERT), ("WB3", 2026, 3))
        assert "case_number" in str(raised.value.orig) or "UNIQUE" in str(raised.value.orig)
        db.session.execute(sa.text("ROLLBACK TO SAVEPOINT before_writes"))
        assert _numbers() == {}
        db.session.rollback()


def test_a_writes_error_wins_over_the_callers(app, dbconn):
    """When the caller fails while a write failed too (on PostgreSQL the caller's own query
    may fail only because the write aborted the transaction), the write's error is raised."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("elsewhere writes run at once, on the caller's thread")
        behind = WriteBehind()
        with pytest.raises(IntegrityError), behind.pending():
            behind.execute(_driver(_INSERT), ("WB4", 2026, 1))
            behind.execute(_driver(_INSERT), ("WB4", 2026, 1))
            raise LookupError("the caller's own failure")
        db.session.rollback()
        with pytest.raises(LookupError), WriteBehind().pending() as clean:
            clean.execute(_driver(_INSERT), ("WB5", 2026, 1))
            raise LookupError("the caller's own failure, the writes went through")
        db.session.rollback()
        assert _numbers() == {}
