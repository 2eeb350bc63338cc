"""The 7×24 duty board (值班看板) and the risk map (风险一张图): figures over the open cases in
a person's scope, each of which the page turns into a link to the case list."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import case as when
from sqlalchemy import func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import (
    LEVEL_RANK,
    Case,
    CaseTask,
    Department,
    MonitoringPoint,
    NodeKind,
    PlatformNode,
    User,
)
from app.services import org
from app.services.case_search import (
    LEVELS,
    Scope,
    _town_of_nodes,
    scope_of,
)
from app.services.errors import ValidationFailed
from app.services.overdue import accept_step
from app.services.scenarios import PUBLICATION_KEY, in_scope, scenario_names
from app.timezone import local_zone

RECENT = timedelta(hours=1)
MAP_POINTS = 5000
# A weather warning published this long ago may still be in force (its own validity decides).
WARNING_LOOKBACK = timedelta(days=7)


def _base(scope: Scope, department: Department | None) -> list[ColumnElement[bool]]:
    where = [Case.is_test.is_(False), Case.scenario != PUBLICATION_KEY, scope.condition()]
    if department is not None:
        where.append(Case.owner_department_id == department.id)
    return where


def _department(code: str | None) -> Department | None:
    if not code:
        return None
    found = db.session.scalar(select(Department).where(Department.code == code))
    if found is None:
        from app.i18n import _l

        raise ValidationFailed(_l("Please correct the marked fields."),
                               details={"department": [str(_l("No such department."))]})
    return found


def board(user: User, *, now: datetime, department: str | None = None) -> dict[str, Any]:
    """Every figure of the board as plain data (JSON for the page's refresh)."""
    scope = scope_of(user)
    dept = _department(department)
    base = _base(scope, dept)
    is_open = Case.status == "open"
    names = scenario_names()
    # One scan of the open cases in scope, grouped finely enough that every open-case figure
    # of the board is a sum of its groups (the matrix, the towns, the loops, stuck, past the
    # deadline): a scope of paths is filtered on the table rows, so each further statement
    # would read them all again.
    stuck = when((Case.stuck_since.is_not(None), 1), else_=0)
    late = when((Case.due_at < now, 1), else_=0)
    groups = db.session.execute(
        select(Case.scenario, Case.level, Case.node_id, Case.loop_level, stuck, late,
               func.count())
        .where(*base, is_open)
        .group_by(Case.scenario, Case.level, Case.node_id, Case.loop_level, stuck, late)
    ).tuples().all()
    matrix: dict[str, dict[str, int]] = {}
    by_node: dict[int, int] = {}
    total = medium = big = stuck_count = past_deadline = 0
    for scenario, level, node_id, loop, is_stuck, is_late, n in groups:
        n = int(n)
        row = matrix.setdefault(scenario, {})
        row[level] = row.get(level, 0) + n
        by_node[node_id] = by_node.get(node_id, 0) + n
        total += n
        medium += n if loop == "medium" else 0
        big += n if loop == "big" else 0
        stuck_count += n if is_stuck else 0
        past_deadline += n if is_late else 0
    towns = _town_of_nodes(set(by_node))
    per_town: dict[str, dict[str, Any]] = {}
    for node_id, n in by_node.items():
        town = towns.get(node_id)
        if town is not None:
            entry = per_town.setdefault(town.code, {"code": town.code, "name": town.name,
                                                    "count": 0})
            entry["count"] += int(n)
    new_last_hour = db.session.scalar(select(func.count()).select_from(Case).where(
        *base, Case.opened_at >= now - RECENT)) or 0
    # Overdue as the overdue list says (past the closing deadline, or not accepted in time),
    # counted in two index-friendly halves rather than one OR with a subquery per case.
    late_accept = select(CaseTask.case_id).where(
        accept_step(), CaseTask.status == "ready", CaseTask.due_at < now)
    not_accepted = db.session.scalar(select(func.count()).select_from(Case).where(
        *base, is_open, or_(Case.due_at.is_(None), Case.due_at >= now),
        Case.id.in_(late_accept))) or 0
    overdue = past_deadline + not_accepted
    since = (now - RECENT).astimezone(_local_tz()).strftime("%Y-%m-%dT%H:%M")
    return {
        "at": now.isoformat(),
        "department": dept.code if dept else None,
        "open": total,
        "new_last_hour": int(new_last_hour), "new_since": since,
        "escalated": {"medium": medium, "big": big},
        "stuck": stuck_count,
        "overdue": int(overdue),
        "levels": list(LEVELS),
        "matrix": [{"scenario": code, "name": names.get(code, code),
                    "counts": {lv: row.get(lv, 0) for lv in LEVELS},
                    "total": sum(row.values())}
                   for code, row in sorted(matrix.items(), key=lambda kv: -sum(kv[1].values()))],
        "towns": sorted(per_town.values(), key=lambda t: -t["count"]),
        "weather": weather_in_force(now),
        "silent_feeds": silent_feeds(user, now=now),
    }


def _local_tz() -> Any:
    return local_zone()


def weather_in_force(now: datetime) -> list[dict[str, Any]]:
    """Published weather warnings whose validity has not ended."""
    from app.services import publications

    rows = db.session.scalars(select(Case).where(
        Case.scenario == PUBLICATION_KEY, Case.is_test.is_(False),
        Case.opened_at >= now - WARNING_LOOKBACK).order_by(Case.opened_at.desc()).limit(50))
    found = []
    for case in rows:
        summary = publications.summary(case)
        if summary is None or summary.state != "published":
            continue
        until = summary.effective_until
        if until is not None and until.tzinfo is not None and until < now:
            continue
        found.append({"case_no": case.case_no, "type": summary.warning_type,
                      "level": summary.level, "area": summary.area, "towns": summary.towns,
                      "until": until.isoformat() if until else None})
    return found


def silent_feeds(user: User, *, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
    """Points and source systems silent now in the user's scope, longest silence first."""
    from app.services import feeds

    return [f.to_dict() for f in feeds.silent_feeds(now, user)[:limit]]


# ---------------------------------------------------------------- risk map

CENTROIDS_FILE = org.ORG_DIR / "town_centroids.json"


@cache
def centroids() -> dict[str, Any]:
    """Approximate town centres (WGS-84) for the schematic map, as shipped in handbooks/org."""
    return dict(json.loads(CENTROIDS_FILE.read_text(encoding="utf-8")))


def risk_map(user: User, *, now: datetime, scenarios: tuple[str, ...] = (),
             levels: tuple[str, ...] = ()) -> dict[str, Any]:
    """Towns with their open cases (the choropleth) and points coloured by current level."""
    scope = scope_of(user)
    where = [*_base(scope, None), Case.status == "open"]
    if scenarios:
        where.append(Case.scenario.in_(scenarios))
    if levels:
        where.append(Case.level.in_(levels))
    by_node = dict(db.session.execute(select(Case.node_id, func.count()).where(*where)
                                      .group_by(Case.node_id)).tuples().all())
    towns_of = _town_of_nodes(set(by_node))
    counts: dict[str, int] = {}
    for node_id, n in by_node.items():
        town = towns_of.get(node_id)
        if town is not None:
            counts[town.code] = counts.get(town.code, 0) + int(n)
    places = centroids()["centroids"]
    towns = [{"code": n.code, "name": n.name, "lon": places[n.code][0], "lat": places[n.code][1],
              "count": counts.get(n.code, 0)}
             for n in org.places() if n.code in places]
    # Each point's current level: the highest level among its open cases (none: quiet).
    open_cases = (select(Case.point_id, Case.level, Case.case_no)
                  .where(*where, Case.point_id.is_not(None)).subquery())
    point_where: list[ColumnElement[bool]] = [MonitoringPoint.active.is_(True),
                                              MonitoringPoint.lat.is_not(None),
                                              MonitoringPoint.lon.is_not(None)]
    if not scope.everywhere:
        point_where.append(or_(
            MonitoringPoint.node_id.in_(select(PlatformNode.id).where(
                in_scope(scope.paths, PlatformNode.path))),
            MonitoringPoint.scenario.in_(select(func.substr(PlatformNode.code, 10)).where(
                PlatformNode.kind == NodeKind.SCENARIO, in_scope(scope.paths, PlatformNode.path)))))
    if scenarios:
        point_where.append(MonitoringPoint.scenario.in_(scenarios))
    if levels:  # only points with an open case of those levels
        point_where.append(open_cases.c.case_no.is_not(None))
    rows = db.session.execute(
        select(MonitoringPoint.id, MonitoringPoint.code, MonitoringPoint.name,
               MonitoringPoint.scenario, MonitoringPoint.lat, MonitoringPoint.lon,
               open_cases.c.level, open_cases.c.case_no)
        .outerjoin(open_cases, open_cases.c.point_id == MonitoringPoint.id)
        .where(*point_where)
        .order_by(MonitoringPoint.id).limit(MAP_POINTS * 2)).all()
    points: dict[int, dict[str, Any]] = {}
    for r in rows:
        seen = points.get(r.id)
        if seen is None:
            points[r.id] = {"code": r.code, "name": r.name, "scenario": r.scenario,
                            "lat": r.lat, "lon": r.lon, "level": r.level, "case_no": r.case_no}
        elif LEVEL_RANK.get(r.level or "", 0) > LEVEL_RANK.get(seen["level"] or "", 0):
            seen.update(level=r.level, case_no=r.case_no)
    return {"at": now.isoformat(), "datum": centroids()["datum"],
            "note": centroids()["source"], "towns": towns,
            "points": list(points.values())[:MAP_POINTS]}
