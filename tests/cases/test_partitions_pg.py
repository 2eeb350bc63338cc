"""Monthly partitions of alert and case_event on PostgreSQL (migration 0014_scale): data
survives the conversion both ways, idempotency keys stay unique across months, history stays
append-only, and upkeep creates months ahead and never drops one younger than six months."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.extensions import db
from app.jobs import maintain_partitions
from app.models import Alert, ApiKey, Case, CaseEvent, MonitoringPoint, Role, RoleAssignment, User
from app.services import api_keys, org, partitions
from app.services.intake import AlertIn
from app.services.intake_batches import ingest_many
from app.services.verification import verify_case
from cases_fixtures import fresh_pg_app, publish_all
from helpers import Clock

pytestmark = pytest.mark.commits

DB_NAME = "ops_partitions_test"


@pytest.fixture
def pg_app() -> Iterator[tuple[Flask, Clock]]:
    with fresh_pg_app(DB_NAME, migrated=False) as (app, clock):
        yield app, clock


def _alerts(clock: Clock, first: int, count: int) -> list[AlertIn]:
    return [AlertIn("gas", "ch4_lel", f"PT-{n % 5}", 30.0 + n, clock(),
                    idempotency_key=f"pt-{n}") for n in range(first, first + count)]


def _kinds(table: str) -> str:
    return str(db.session.scalar(sa.text("SELECT relkind FROM pg_class WHERE relname = :t"),
                                 {"t": table}))


def test_alerts_and_history_move_into_monthly_partitions_and_back(pg_app: Any) -> None:
    app, clock = pg_app
    with app.app_context():
        upgrade(revision="0013_oversight")
        org.load_org()
        publish_all(clock())
        for n in range(5):
            db.session.add(MonitoringPoint(code=f"PT-{n}", name=f"测点{n}", scenario="gas",
                                           node=org.node_by_code("town.02")))
        tech = User(username="pt.tech", display_name="技术", password_hash="x",
                    home_node=org.node_by_code("district"))
        tech.assignments = [RoleAssignment(role=Role.TECH_ADMIN,
                                           node=org.node_by_code("district"))]
        db.session.add(tech)
        db.session.flush()
        api_keys.issue(tech, name="iot", source_type="iot", scenarios=["gas"], now=clock(),
                       known_scenarios={"gas"})
        key = db.session.scalar(select(ApiKey))
        first = ingest_many(key, _alerts(clock, 0, 10), now=clock())  # plain tables
        db.session.commit()
        before = (db.session.scalar(select(func.count()).select_from(Alert)),
                  db.session.scalar(select(func.count()).select_from(CaseEvent)))
        db.session.remove()

        upgrade()
        assert (_kinds("alert"), _kinds("case_event")) == ("p", "p")
        month = partitions.month_start(clock())
        have = partitions.monthly_partitions(db.session.connection(), "alert")
        assert month in have and partitions.add_months(month, 3) in have
        assert (db.session.scalar(select(func.count()).select_from(Alert)),
                db.session.scalar(select(func.count()).select_from(CaseEvent))) == before
        db.session.rollback()

        # New alerts and steps land in their month; ids keep counting; retries still replay.
        clock.advance(days=40)
        key = db.session.scalar(select(ApiKey))
        again = ingest_many(key, _alerts(clock, 5, 10), now=clock())
        db.session.commit()
        assert [o.replayed for o in again] == [True] * 5 + [False] * 5
        # A retry answers what its first delivery got, read from that alert's own month.
        assert [(o.alert_id, o.disposition, o.case_no, o.level) for o in again[:5]] == [
            (o.alert_id, o.disposition, o.case_no, o.level) for o in first[5:]]
        assert db.session.scalar(select(func.count()).select_from(Alert)) == 15
        ids = db.session.scalars(select(Alert.id).order_by(Alert.id)).all()
        assert ids == sorted(set(ids))
        for case in db.session.scalars(select(Case)):
            assert verify_case(case).ok

        # A key stored last month is still unique this month, whatever path inserts it.
        row = db.session.scalar(select(Alert).where(Alert.idempotency_key == "pt-0"))
        assert row is not None
        values = {c.name: getattr(row, c.key) for c in Alert.__table__.columns if c.name != "id"}
        values["received_at"] = clock()
        with pytest.raises(IntegrityError):
            with db.session.begin_nested():
                db.session.execute(sa.insert(Alert.__table__).values(**values))
        # History is still append-only in every partition.
        with pytest.raises(DBAPIError, match="append-only"):
            with db.session.begin_nested():
                db.session.execute(sa.update(CaseEvent.__table__).values(kind="x"))
        db.session.rollback()

        downgrade(revision="0013_oversight")
        assert (_kinds("alert"), _kinds("case_event")) == ("r", "r")
        assert db.session.scalar(select(func.count()).select_from(Alert)) == 15
        db.session.rollback()
        upgrade()
        assert _kinds("alert") == "p"
        db.session.remove()


def test_upkeep_creates_months_ahead_and_keeps_at_least_six(pg_app: Any) -> None:
    app, clock = pg_app
    with app.app_context():
        upgrade()
        conn = db.session.connection()
        now = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
        done = partitions.maintain(conn, now)
        months = partitions.monthly_partitions(conn, "case_event")
        assert {partitions.month_start(now),
                partitions.add_months(partitions.month_start(now), 3)} <= set(months)
        assert "case_event_y2027m06" in done.created
        assert partitions.maintain(conn, now).created == []  # nothing twice
        with pytest.raises(ValueError, match="6 months"):
            partitions.maintain(conn, now, retention_months=3)
        # Nine months on, keeping six: the months that ended more than six months ago go,
        # the last six stay.
        later = datetime(2027, 12, 15, 12, 0, tzinfo=UTC)
        done = partitions.maintain(conn, later, retention_months=6)
        kept = partitions.monthly_partitions(conn, "alert")
        assert "alert_y2027m05" in done.dropped and "alert_y2027m06" not in done.dropped
        assert min(kept) == partitions.add_months(partitions.month_start(later), -6)
        db.session.commit()
    # The scheduler's job, at the app's clock, under its lock, committed.
    clock.now = datetime(2030, 1, 10, tzinfo=UTC)
    assert "alert_y2030m04" in maintain_partitions(app)
    with app.app_context():
        assert partitions.add_months(partitions.month_start(clock()), 3) in \
            partitions.monthly_partitions(db.session.connection(), "alert")
        db.session.remove()
