"""Fixtures for case tests: published handbooks, a source-system key, monitoring points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, MonitoringPoint, Role, User
from app.services import api_keys, handbooks, org
from app.services.intake import AlertIn, ingest
from cases_fixtures import ANSWERS, SCENARIOS, fill_form, publish_all

_BUNDLES: list[Any] = []
# The rows one publication writes, table by table in dependency order: recorded by the first
# test that asks for published handbooks, inserted again (a few statements) by every later one.
# One record per database of the session.
_PUBLICATIONS: dict[str, list[tuple[sa.Table, list[dict[str, Any]]]]] = {}


def _keys(connection: sa.Connection, table: sa.Table) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in connection.execute(select(*table.primary_key.columns))}


def _record_publication(connection: sa.Connection, now: Any
                        ) -> list[tuple[sa.Table, list[dict[str, Any]]]]:
    recorded: list[tuple[sa.Table, list[dict[str, Any]]]] = []
    tables = db.metadata.sorted_tables
    before = {table.name: _keys(connection, table) for table in tables}
    publish_all(now)
    db.session.flush()
    for table in tables:
        pk = list(table.primary_key.columns)
        rows = [dict(row._mapping) for row in connection.execute(select(table))
                if tuple(row._mapping[c.name] for c in pk) not in before[table.name]]
        if rows:
            recorded.append((table, rows))
    return recorded


def _replay_publication(connection: sa.Connection,
                        recorded: list[tuple[sa.Table, list[dict[str, Any]]]]) -> None:
    for table, rows in recorded:
        connection.execute(table.insert(), rows)
        if connection.dialect.name == "postgresql" and "id" in table.c:
            connection.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"(SELECT max(id) FROM {table.name}))"))


@pytest.fixture(autouse=True)
def _publish_first(request: pytest.FixtureRequest) -> None:
    """Published handbooks come before anything else a test writes, so that the rows of the
    one recorded publication fit every test (same ids, same audit chain)."""
    if "published" in request.fixturenames:
        request.getfixturevalue("published")


@pytest.fixture
def published(app: Flask, dbconn: sa.Connection, clock: Any, monkeypatch: pytest.MonkeyPatch
              ) -> None:
    """All handbooks published: deployed and reviewed once per session, the rows it wrote
    inserted again for every later test. A deploy from another folder still reads that folder;
    the handbooks folder is read once."""
    read = handbooks.collect_bundles

    def cached(root: Any = handbooks.ROOT) -> list[Any]:
        if root != handbooks.ROOT:
            return read(root)
        if not _BUNDLES:
            _BUNDLES.extend(read())
        return list(_BUNDLES)

    monkeypatch.setattr(handbooks, "collect_bundles", cached)
    with app.app_context():
        database = str(dbconn.engine.url)
        if database in _PUBLICATIONS:
            _replay_publication(dbconn, _PUBLICATIONS[database])
        else:
            _PUBLICATIONS[database] = _record_publication(dbconn, clock())
        db.session.commit()


@pytest.fixture
def people(make_user: Callable[..., dict[str, Any]]) -> dict[str, int]:
    """One account per lane of the gas handbook: role -> user id."""
    return {
        "business_admin": make_user((Role.BUSINESS_ADMIN, "scenario.gas"))["id"],
        "responder": make_user((Role.RESPONDER, "town.02"), username="rs.ljz")["id"],
        "department_head": make_user((Role.DEPARTMENT_HEAD, "industry.construction"))["id"],
        "leader_in_charge": make_user((Role.LEADER_IN_CHARGE, "industry.construction"))["id"],
    }


@pytest.fixture
def open_case(published: None, point: Callable[..., str], send: Callable[..., dict[str, Any]],
              drive: Callable[..., list[str]], people: dict[str, int]) -> Callable[..., str]:
    """`open_case(value, stop_at=...)`: a gas case in 陆家嘴 driven by `people` until
    `stop_at` is ready (to its end with None); returns its number."""

    def make(value: float = 30.0, stop_at: str | None = "Activity_accept") -> str:
        code = point("GAS-MH-0001", "gas")
        case_no = str(send("gas", "ch4_lel", value, code)["case_no"])
        drive(case_no, people, stop_at=stop_at)
        return case_no

    return make


@pytest.fixture
def gas_case(app: Flask, published: None, point: Callable[..., str],
             send: Callable[..., dict[str, Any]]) -> str:
    point("GAS-MH-0001", "gas")
    return str(send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"])


@pytest.fixture
def source_key(app: Flask, dbconn: Any, clock: Any, make_user: Callable[..., Any]) -> str:
    admin = make_user((Role.TECH_ADMIN, "district"))
    with app.app_context():
        issued = api_keys.issue(db.session.get(User, admin["id"]), name="IoT", source_type="iot",
                                scenarios=list(SCENARIOS), now=clock(),
                                known_scenarios=set(SCENARIOS))
        db.session.commit()
        return issued.secret


@pytest.fixture
def point(app: Flask, dbconn: Any) -> Callable[..., str]:
    def make(code: str, scenario: str, town: str = "town.02") -> str:
        with app.app_context():
            db.session.add(MonitoringPoint(code=code, name=f"测点{code}", scenario=scenario,
                                           node=org.node_by_code(town), lat=31.23, lon=121.5))
            db.session.commit()
        return code

    return make


@pytest.fixture
def send(app: Flask, clock: Any, source_key: str) -> Callable[..., dict[str, Any]]:
    """Ingest one alert through the service, committed, as the API would."""

    def _send(scenario: str, indicator: str, value: float, point: str, **kw: Any
              ) -> dict[str, Any]:
        with app.app_context():
            key = db.session.scalar(select(ApiKey))
            outcome = ingest(key, AlertIn(scenario=scenario, indicator=indicator,
                                          point_code=point, value=value,
                                          observed_at=clock(), **kw), now=clock())
            db.session.commit()
            return outcome.to_dict()

    return _send


@pytest.fixture
def drive(app: Flask, clock: Any) -> Callable[..., list[str]]:
    """Complete the ready tasks of a case as their roles until `stop_at` is ready (or the
    case ends); `people` maps role -> user id. Returns the element ids completed."""
    from app.models import Case, CaseTask
    from app.services import case_engine, cases

    def run(case_no: str, people: dict[str, int], *, stop_at: str | None = None,
            answers: dict[str, dict[str, Any]] | None = None, steps: int = 30) -> list[str]:
        done: list[str] = []
        for _ in range(steps):
            with app.app_context():
                case = db.session.scalar(select(Case).where(Case.case_no == case_no))
                if case.status != "open":
                    return done
                task = db.session.scalar(select(CaseTask).where(
                    CaseTask.case_id == case.id, CaseTask.status == "ready")
                    .order_by(CaseTask.id))
                if task is None or task.element_id == stop_at:
                    return done
                fields = case_engine.load(case).compiled.form_fields(task.process_id,
                                                                     task.element_id)
                given = {**ANSWERS, **(answers or {})}.get(task.element_id, {})
                actor = db.session.get(User, people[task.role])
                clock.advance(minutes=1)
                cases.complete(actor, task.id, fill_form(fields, given), now=clock())
                db.session.commit()
                done.append(task.element_id)
        return done

    return run
