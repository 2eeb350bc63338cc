"""Plain helpers (not fixtures) for tests that manage their own database and commits."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select

from app import create_app
from app.config import _database_url
from app.extensions import db
from app.models import Case, CaseTask, HandbookVersion, Role, RoleAssignment, User, VersionStatus
from app.services import case_engine, cases, handbooks, org
from helpers import Clock

# The PostgreSQL server that tests needing real commits create their own databases beside.
PG_BASE_URL = os.environ.get("TEST_DATABASE_URL")


# Every scenario of the platform, in the order of the annex.
SCENARIOS = ("flood_typhoon", "rain_snow_ice", "industry_trade", "hazardous_chemicals", "gas",
             "bridge", "utility_tunnel", "construction_site", "water", "forest_fire",
             "oil_gas_pipeline", "traffic", "crowd", "elevator", "power_supply")


@contextmanager
def fresh_database(base_url: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database beside `base_url` for tests that need real commits
    from several connections or processes; dropped afterwards. Yields its URL."""
    admin = sa.create_engine(_database_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield sa.make_url(_database_url(base_url)).set(database=name) \
            .render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@contextmanager
def fresh_pg_app(name: str, *, migrated: bool = True) -> Iterator[tuple[Flask, Clock]]:
    """An application with its own clock on a new PostgreSQL database `name` beside
    TEST_DATABASE_URL (the test is skipped without it): with the schema and the organisation
    unless `migrated=False`; disposed and dropped afterwards."""
    if not PG_BASE_URL:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
    with fresh_database(PG_BASE_URL, name) as url:
        clock = Clock()
        app = create_app(DATABASE_URL=url, SECRET_KEY=f"{name}-secret-0123456789abcdef",
                         clock=clock)
        if migrated:
            with app.app_context():
                upgrade()
                org.load_org()
                db.session.commit()
        try:
            yield app, clock
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def publish_all(now: datetime) -> None:
    """Deploy the handbooks on disk and publish each through the review path."""
    writer = User(username="hb.writer", display_name="手册起草", password_hash="x",
                  home_node=org.node_by_code("district"))
    reviewer = User(username="hb.reviewer", display_name="手册审核", password_hash="x",
                    home_node=org.node_by_code("district"))
    district = org.node_by_code("district")
    writer.assignments = [RoleAssignment(role=Role.BUSINESS_ADMIN, node=district)]
    reviewer.assignments = [RoleAssignment(role=Role.DEPARTMENT_HEAD, node=district)]
    db.session.add_all([writer, reviewer])
    db.session.flush()
    for version in handbooks.deploy(author=writer, now=now).created:
        handbooks.submit_for_review(writer, version.id, note="", now=now)
        handbooks.approve(reviewer, version.id, comment="同意", now=now)


def ready_task(app: Flask, case_no: str) -> CaseTask:
    """The case's first ready task, detached from the session (None when there is none)."""
    with app.app_context():
        task = db.session.scalar(select(CaseTask).join(Case).where(
            Case.case_no == case_no, CaseTask.status == "ready").order_by(CaseTask.id))
        db.session.expunge_all()
        return task  # type: ignore[return-value]


def fill_form(fields: Any, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid answer for every required field, overridden by `given`."""
    form = dict(given or {})
    for f in fields:
        if f.id in form or not f.required:
            continue
        if f.options:
            form[f.id] = f.options[0].id
        elif f.type == "boolean":
            form[f.id] = True
        elif f.type == "long":
            form[f.id] = int(f.min or 1)
        elif f.type == "date":
            form[f.id] = ("2026-07-26T10:30:00+08:00"
                          if dict(f.properties).get("widget") == "datetime" else "2026-07-26")
        else:
            form[f.id] = "现场已按手册处置完毕，隐患已排除。"
    return form


ANSWERS: dict[str, dict[str, Any]] = {
    "Activity_assessment": {"verdict": "confirmed", "major_risk": False},
    "Activity_dispose": {"escalate": "none"},
    "Activity_verify": {"verified": "approve"},
}


def drive_to(app: Flask, clock: Any, case_no: str, people: dict[str, int],
             element_id: str) -> int:
    """Complete tasks until `element_id` is ready; return its task row id."""
    for _ in range(20):
        with app.app_context():
            case = db.session.scalar(select(Case).where(Case.case_no == case_no))
            task = db.session.scalar(select(CaseTask).where(
                CaseTask.case_id == case.id, CaseTask.status == "ready").order_by(CaseTask.id))
            assert task is not None
            if task.element_id == element_id:
                return task.id
            fields = case_engine.load(case).compiled.form_fields(task.process_id,
                                                                 task.element_id)
            cases.complete(db.session.get(User, people[task.role]), task.id,
                           fill_form(fields, ANSWERS.get(task.element_id, {})), now=clock())
            db.session.commit()
    raise AssertionError(f"{element_id} never became ready")


def draft_of(key: str, now: Any, files: dict[str, str] | None = None) -> int:
    """A new draft of `key` holding the published version's files (or `files`)."""
    from app.services.handbook_diff import content_hash

    published = db.session.scalar(select(HandbookVersion).where(
        HandbookVersion.handbook_key == key, HandbookVersion.status == VersionStatus.PUBLISHED))
    number = db.session.scalar(select(func.max(HandbookVersion.number)).where(
        HandbookVersion.handbook_key == key))
    body = dict(files if files is not None else published.files)
    draft = HandbookVersion(handbook_key=key, node_id=published.node_id, number=number + 1,
                            status=VersionStatus.DRAFT, content_hash=content_hash(body),
                            process_id=published.process_id, files=body, change_note="test",
                            diff_summary={}, author_name="hb.writer", created_at=now)
    db.session.add(draft)
    db.session.flush()
    return draft.id


GAS_BPMN = "bpmn/scenario_gas.bpmn"
RENAMED = (('name="到场处置"', 'name="到场处置（新）"'),)
# The dispose step gets a new id: for the engine the old step is gone.
REMOVED = (("Activity_dispose", "Activity_on_site"),)


def publish_edit(app: Flask, clock: Any, *edits: tuple[str, str]) -> int:
    """Publish a new gas version whose process file has `edits` applied; its id."""
    from app.services.handbook_diff import content_hash

    with app.app_context():
        current = handbooks.published_version("gas")
        files = dict(current.files)
        for old, new in edits:
            assert old in files[GAS_BPMN], old
            files[GAS_BPMN] = files[GAS_BPMN].replace(old, new)
        version = HandbookVersion(
            handbook_key="gas", node_id=current.node_id, number=current.number + 1,
            status=VersionStatus.IN_REVIEW, content_hash=content_hash(files),
            process_id=current.process_id, files=files, change_note="edit", diff_summary={},
            author_name="hb.writer", created_at=clock())
        db.session.add(version)
        db.session.flush()
        head = db.session.scalar(select(User).where(User.username == "hb.reviewer"))
        handbooks.approve(head, version.id, comment="同意", now=clock())
        db.session.commit()
        return version.id


def as_test_copy(case_no: str, new_no: str) -> str:
    """A test case (as a draft's test run writes one) standing where the real case `case_no`
    stands: same scenario, level, town, state and deadlines, written with `is_test` set (the
    flag never changes afterwards). Returns its number."""
    source = db.session.scalar(select(Case).where(Case.case_no == case_no))
    assert source is not None
    skip = {"id", "case_no", "is_test", "dedup_key"}
    values = {c.key: getattr(source, c.key) for c in sa.inspect(Case).column_attrs
              if c.key not in skip}
    db.session.add(Case(**values, case_no=new_no, dedup_key=f"test|{new_no}", is_test=True))
    db.session.flush()
    return new_no


# ---------------------------------------------------------------------------------------------
# The figures computed by hand (tests of app.services.figures)

PERCENTILES = ("accept_p50", "accept_p90", "close_p50", "close_p90")


def nearest_rank(values: list[float], p: int) -> float | None:
    if not values:
        return None
    return sorted(values)[math.ceil(p / 100 * len(values)) - 1]


def with_derived(counts: dict[str, Any], to_accept: list[float], to_close: list[float]
                 ) -> dict[str, Any]:
    """Hand counts completed with the rates of `figures.RATES` and the mean, p50 and p90 of
    the times to accept and to close (nearest rank)."""
    from app.services import figures

    for rate, (num, den) in figures.RATES.items():
        counts[rate] = counts[num] / counts[den] if counts[den] else None
    for name, values in (("accept", to_accept), ("close", to_close)):
        counts[f"{name}_mean"] = sum(values) / len(values) if values else None
        counts[f"{name}_p50"] = nearest_rank(values, 50)
        counts[f"{name}_p90"] = nearest_rank(values, 90)
    return counts
