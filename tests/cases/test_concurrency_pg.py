"""Two people complete the same task at once, on PostgreSQL with real connections and commits:
exactly one wins, the other gets a clear conflict, nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    ApiKey,
    Case,
    CaseEvent,
    CaseTask,
    MonitoringPoint,
    Role,
    RoleAssignment,
    User,
)
from app.services import api_keys, cases, org
from app.services.errors import Conflict
from app.services.intake import AlertIn, ingest
from cases_fixtures import drive_to, fresh_pg_app, publish_all
from helpers import PASSWORD, Clock

pytestmark = pytest.mark.commits

DB_NAME = "ops_concurrency_test"


@pytest.fixture
def pg_app() -> Iterator[tuple[Flask, Clock]]:
    with fresh_pg_app(DB_NAME) as (app, clock):
        yield app, clock


def _user(username: str, role: Role, node: str) -> User:
    from app.services.accounts import hash_password

    user = User(username=username, display_name=username, password_hash=hash_password(PASSWORD),
                home_node=org.node_by_code(node))
    user.assignments = [RoleAssignment(role=role, node=org.node_by_code(node))]
    db.session.add(user)
    return user


def test_exactly_one_of_two_concurrent_completions_wins(pg_app: Any) -> None:
    app, clock = pg_app
    with app.app_context():
        publish_all(clock())
        ids = {"business_admin": _user("ba", Role.BUSINESS_ADMIN, "scenario.gas"),
               "responder": _user("r1", Role.RESPONDER, "town.02")}
        second = _user("r2", Role.RESPONDER, "town.02")
        tech = _user("tech", Role.TECH_ADMIN, "district")
        db.session.flush()
        api_keys.issue(tech, name="iot", source_type="iot", scenarios=["gas"], now=clock(),
                       known_scenarios={"gas"})
        db.session.add(MonitoringPoint(code="P1", name="测点", scenario="gas",
                                       node=org.node_by_code("town.02")))
        db.session.commit()
        people = {role: u.id for role, u in ids.items()}
        second_id = second.id
        key = db.session.scalar(select(ApiKey))
        case_no = ingest(key, AlertIn("gas", "ch4_lel", "P1", 30.0, clock()), now=clock()).case_no
        db.session.commit()
    task_id = drive_to(app, clock, case_no, people, "Activity_accept")

    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt(user_id: int) -> None:
        with app.app_context():
            user = db.session.get(User, user_id)
            barrier.wait()
            try:
                cases.complete(user, task_id, {"accepted": True, "eta_minutes": 10},
                               now=clock())
                db.session.commit()
                results.append("ok")
            except Conflict as exc:
                db.session.rollback()
                results.append(f"conflict:{exc.code}")

    threads = [threading.Thread(target=attempt, args=(uid,))
               for uid in (people["responder"], second_id)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == ["conflict:task_gone", "ok"], results
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        completions = db.session.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.element_id == "Activity_accept",
            CaseEvent.new_state == "COMPLETED"))
        assert completions == 1
        assert db.session.scalar(select(CaseTask.status).where(CaseTask.id == task_id)) \
            == "completed"


def test_two_batches_opening_the_same_warnings_at_once_open_each_case_once(pg_app: Any
                                                                           ) -> None:
    """Both batches read that no case is open, and both open; the second one's cases collide
    with the first one's at the unique open-case index, and its alerts join those cases one
    by one: nothing lost, nothing opened twice, every history intact."""
    from app.services import case_engine
    from app.services.intake_batches import ingest_many

    app, clock = pg_app
    with app.app_context():
        publish_all(clock())
        tech = _user("tech", Role.TECH_ADMIN, "district")
        db.session.flush()
        api_keys.issue(tech, name="iot", source_type="iot", scenarios=["gas"], now=clock(),
                       known_scenarios={"gas"})
        for n in range(20):
            db.session.add(MonitoringPoint(code=f"P{n}", name="测点", scenario="gas",
                                           node=org.node_by_code("town.02")))
        db.session.commit()

    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def storm(value: float) -> None:
        with app.app_context():
            key = db.session.scalar(select(ApiKey))
            barrier.wait()
            try:
                outcomes = ingest_many(key, [AlertIn("gas", "ch4_lel", f"P{n}", value, clock())
                                             for n in range(20)], now=clock())
                db.session.commit()
                results.append([o.disposition for o in outcomes])
            except BaseException as exc:  # the assertion below names it
                errors.append(exc)

    threads = [threading.Thread(target=storm, args=(v,)) for v in (30.0, 31.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(d for batch in results for d in batch) == ["grouped"] * 20 + ["opened"] * 20
    with app.app_context():
        opened = db.session.scalars(select(Case).where(Case.status == "open")).all()
        assert len(opened) == 20 and {c.alert_count for c in opened} == {2}
        numbers = sorted(int(c.case_no.rsplit("-", 1)[1]) for c in opened)
        assert numbers == list(range(numbers[0], numbers[0] + 20))  # no number lost
        for case in opened:
            events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                        .order_by(CaseEvent.seq)).all()
            assert case_engine.chain_intact(events) is None
        assert db.session.scalar(select(func.count()).select_from(CaseTask)) == 20
