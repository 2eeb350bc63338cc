"""The case list as rows for its CSV and XLSX exports: every matching case, read in keyset
batches so that memory stays flat however many rows there are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.models import Case, Department, User
from app.services import case_search
from app.services.scenarios import scenario_names
from app.timezone import local_zone

EXPORT_COLUMNS = ("case_no", "state", "level", "highest_level", "scenario", "item_name",
                  "town", "department", "loop_level", "source", "point_code", "alert_count",
                  "last_value", "unit", "opened_at", "accepted_at", "closed_at", "due_at",
                  "outcome")


def count(user: User, query: case_search.CaseQuery, *, now: datetime) -> int:
    where = case_search.conditions(query, case_search.scope_of(user), now=now)
    return db.session.scalar(select(func.count()).select_from(Case).where(*where)) or 0


def export_rows(scope: case_search.Scope, query: case_search.CaseQuery, *, now: datetime,
                batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every matching case in `scope` (see scope_of) as a plain row, read in batches by
    keyset so memory stays flat however many rows there are."""
    where = case_search.conditions(query, scope, now=now)
    names = scenario_names()
    departments = dict(db.session.execute(select(Department.id, Department.name)).tuples().all())
    town_cache: dict[int, str] = {}
    columns = (Case.id, Case.case_no, case_search.state_of().label("state"), Case.level,
               Case.highest_level, Case.scenario, Case.item_name, Case.node_id,
               Case.owner_department_id, Case.loop_level, Case.dedup_key, Case.point_code,
               Case.alert_count, Case.last_value, Case.unit, Case.opened_at, Case.accepted_at,
               Case.closed_at, Case.due_at, Case.outcome)
    last_id: int | None = None
    while True:
        stmt = select(*columns).where(*where)
        if last_id is not None:
            stmt = stmt.where(Case.id < last_id)
        rows = db.session.execute(stmt.order_by(Case.id.desc()).limit(batch)).all()
        if not rows:
            return
        missing = {r.node_id for r in rows} - set(town_cache)
        if missing:
            towns = case_search._town_of_nodes(missing)
            town_cache.update({i: (towns[i].name if i in towns else "") for i in missing})
        for r in rows:
            yield {
                "case_no": r.case_no, "state": r.state, "level": r.level,
                "highest_level": r.highest_level, "scenario": names.get(r.scenario, r.scenario),
                "item_name": r.item_name, "town": town_cache.get(r.node_id, ""),
                "department": departments.get(r.owner_department_id or 0, ""),
                "loop_level": r.loop_level, "source": r.dedup_key.split("|", 1)[0],
                "point_code": r.point_code, "alert_count": r.alert_count,
                "last_value": r.last_value, "unit": r.unit,
                "opened_at": _local(r.opened_at), "accepted_at": _local(r.accepted_at),
                "closed_at": _local(r.closed_at), "due_at": _local(r.due_at),
                "outcome": r.outcome or ""}
        last_id = rows[-1].id
        db.session.expire_all()


def _local(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:  # a raw column read on SQLite
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M")
