"""Guards the database keeps whichever path writes (migration 0018 made them cheaper on
PostgreSQL): a case never changes between test and real, and an idempotency key is stored
once, by a batch as by a single alert."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.extensions import db
from app.models import Alert, ApiKey, Case
from app.services.intake import AlertIn
from app.services.intake_batches import ingest_many


def test_a_case_never_changes_between_test_and_real(app, gas_case):
    with app.app_context():
        case_id = db.session.scalar(select(Case.id).where(Case.case_no == gas_case))
        table = Case.__table__
        with db.session.begin_nested():  # any other column may change
            db.session.execute(sa.update(table).where(table.c.id == case_id)
                               .values(alert_count=table.c.alert_count + 1))
        with pytest.raises(DBAPIError, match="is_test never changes"):
            with db.session.begin_nested():
                db.session.execute(sa.update(table).where(table.c.id == case_id)
                                   .values(is_test=True))
        with db.session.begin_nested():  # set to what it is: no change
            db.session.execute(sa.update(table).where(table.c.id == case_id)
                               .values(is_test=False))
        assert db.session.scalar(select(Case.is_test).where(Case.id == case_id)) is False


def test_a_batchs_keys_are_stored_once(app, published, source_key, point, clock):
    for n in range(3):
        point(f"GAS-MH-10{n}", "gas")
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        batch = [AlertIn("gas", "ch4_lel", f"GAS-MH-10{n}", 30.0, clock(),
                         idempotency_key=f"guard-{n}") for n in range(3)]
        first = ingest_many(key, batch, now=clock())
        db.session.commit()
        again = ingest_many(key, batch, now=clock())
        assert [o.replayed for o in again] == [True] * 3
        assert [o.alert_id for o in again] == [o.alert_id for o in first]
        # Written past the intake, a stored key is refused by the database itself.
        row = db.session.scalar(select(Alert).where(Alert.idempotency_key == "guard-1"))
        values = {c.name: getattr(row, c.key) for c in Alert.__table__.columns
                  if c.name != "id"}
        with pytest.raises(IntegrityError):
            with db.session.begin_nested():
                db.session.execute(sa.insert(Alert.__table__).values(**values))
        db.session.rollback()
