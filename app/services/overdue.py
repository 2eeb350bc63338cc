"""Operations watch lists (Art 9): overdue cases, silences in force and unknown points, scoped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, tuple_

from app.extensions import db
from app.models import (
    Alert,
    Case,
    CaseTask,
    Department,
    MonitoringPoint,
    NodeKind,
    PlatformNode,
    Silence,
    User,
)
from app.services.permissions import require, scope_paths
from app.services.scenarios import (  # noqa: F401 (their old home; other modules import them)
    PUBLICATION_KEY,
    in_scope,
    scenario_code,
    scenario_names,
    scenarios_in_scope,
    visible_scenarios,
)
from app.services.steps import ACCEPT, marked_elements

# Kinds of lateness, most urgent first: a case nobody took on is worse than one not yet closed.
NOT_ACCEPTED = "not_accepted"
NOT_CLOSED = "not_closed"


@dataclass(frozen=True)
class OverdueCase:
    case_id: int
    case_no: str
    scenario: str
    item_name: str
    level: str
    town: str | None
    department_code: str | None
    department_name: str | None
    reasons: tuple[str, ...]
    deadline: datetime
    late_minutes: int

    @property
    def late_hours(self) -> float:
        return round(self.late_minutes / 60, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"case_no": self.case_no, "scenario": self.scenario, "item": self.item_name,
                "level": self.level, "town": self.town, "department": self.department_code,
                "reasons": list(self.reasons), "deadline": self.deadline.isoformat(),
                "late_minutes": self.late_minutes, "late_hours": self.late_hours}


@dataclass
class DepartmentOverdue:
    code: str | None
    name: str | None
    cases: list[OverdueCase] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.cases)

    @property
    def not_accepted(self) -> int:
        return sum(1 for c in self.cases if NOT_ACCEPTED in c.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "count": self.count,
                "not_accepted": self.not_accepted, "cases": [c.to_dict() for c in self.cases]}


@dataclass(frozen=True)
class OverdueReport:
    at: datetime
    cases: list[OverdueCase]  # most late first
    departments: list[DepartmentOverdue]  # the department with the latest case first

    @property
    def total(self) -> int:
        return len(self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "total": self.total,
                "departments": [d.to_dict() for d in self.departments]}


TERRITORY = (NodeKind.TOWN, NodeKind.VILLAGE, NodeKind.LINGANG)


def _towns(cases: Sequence[Case]) -> dict[int, str | None]:
    """Case id -> the street or town it lies in (a village case names its town); None when
    the case sits on its scenario's line because its point is not registered."""
    parents = {c.node.parent_id for c in cases if c.node.kind == NodeKind.VILLAGE}
    names = dict(db.session.execute(select(PlatformNode.id, PlatformNode.name).where(
        PlatformNode.id.in_(parents))).tuples().all()) if parents else {}
    found: dict[int, str | None] = {}
    for case in cases:
        node = case.node
        found[case.id] = (names.get(node.parent_id or 0, node.name)
                          if node.kind == NodeKind.VILLAGE else
                          node.name if node.kind in TERRITORY else None)
    return found


def accept_step() -> ColumnElement[bool]:
    """A task row is an accept step (found by its mark in the version's BPMN)."""
    pairs = sorted(marked_elements(ACCEPT))
    if not pairs:
        return false()
    return tuple_(CaseTask.process_id, CaseTask.element_id).in_(pairs)


def overdue_cases(actor: User, now: datetime, department: str | None = None) -> OverdueReport:
    """Open cases past their closing deadline or not accepted in time, in `actor`'s scope,
    grouped per owner department, most late first."""
    require(actor, "overdue.view")
    paths = scope_paths(actor, "overdue.view")
    scoped = in_scope(paths, Case.scope_path, Case.scenario_path)
    late_accept = (select(CaseTask.case_id, func.min(CaseTask.due_at).label("due"))
                   .where(accept_step(), CaseTask.status == "ready",
                          CaseTask.due_at < now,
                          in_scope(paths, CaseTask.scope_path, CaseTask.scenario_path))
                   .group_by(CaseTask.case_id).subquery())
    query = (select(Case, late_accept.c.due)
             .outerjoin(late_accept, late_accept.c.case_id == Case.id)
             .where(Case.status == "open", Case.is_test.is_(False), scoped,
                    or_(Case.due_at < now, late_accept.c.due.is_not(None))))
    if department:
        query = query.join(Department, Department.id == Case.owner_department_id).where(
            Department.code == department)
    rows = db.session.execute(query).tuples().all()
    towns = _towns([case for case, _ in rows])
    found: list[OverdueCase] = []
    for case, accept_due in rows:
        deadlines: dict[str, datetime] = {}
        if accept_due is not None:
            deadlines[NOT_ACCEPTED] = accept_due
        if case.due_at is not None and case.due_at < now:
            deadlines[NOT_CLOSED] = case.due_at
        earliest = min(deadlines.values())
        owner = case.owner_department
        found.append(OverdueCase(
            case_id=case.id, case_no=case.case_no, scenario=case.scenario,
            item_name=case.item_name, level=case.level, town=towns[case.id],
            department_code=owner.code if owner else None,
            department_name=owner.name if owner else None,
            reasons=tuple(r for r in (NOT_ACCEPTED, NOT_CLOSED) if r in deadlines),
            deadline=earliest, late_minutes=int((now - earliest).total_seconds() // 60)))
    found.sort(key=lambda c: (-c.late_minutes, c.case_no))
    groups: dict[str | None, DepartmentOverdue] = {}
    for item in found:
        group = groups.setdefault(item.department_code,
                                  DepartmentOverdue(item.department_code, item.department_name))
        group.cases.append(item)
    return OverdueReport(now, found, list(groups.values()))


# Silences and silenced alerts: scoped through the scenario node each belongs to.


@dataclass(frozen=True)
class SilenceList:
    active: list[Silence]
    past: list[Silence]
    silenced_alerts: list[tuple[Alert, Silence | None]]
    names: dict[int, str]  # user id -> display name, for who set or ended a silence


def silences(actor: User, now: datetime, *, limit: int = 100) -> SilenceList:
    """Silences and the alerts they held back, for the scenarios in `actor`'s scope."""
    codes = visible_scenarios(actor, "silence.manage", "overdue.view")
    rows = list(db.session.scalars(select(Silence).where(Silence.scenario.in_(codes))
                                   .order_by(Silence.ends_at.desc()).limit(limit)))
    active = [s for s in rows if s.ended_at is None and s.ends_at > now]
    active.sort(key=lambda s: s.ends_at)
    past = [s for s in rows if s not in active]
    alerts = db.session.execute(
        select(Alert, Silence).outerjoin(Silence, Silence.id == Alert.silence_id)
        .where(Alert.disposition == "silenced", Alert.scenario.in_(codes))
        .order_by(Alert.received_at.desc(), Alert.id.desc()).limit(limit)).tuples().all()
    ids = {s.created_by_id for s in rows} | {s.ended_by_id for s in rows if s.ended_by_id}
    names = dict(db.session.execute(select(User.id, User.display_name).where(
        User.id.in_(ids))).tuples().all()) if ids else {}
    return SilenceList(active, past, [(a, s) for a, s in alerts], names)


@dataclass(frozen=True)
class UnknownPoint:
    scenario: str
    point_code: str
    alerts: int
    first_received: datetime
    last_received: datetime
    last_case_id: int | None


def unknown_points(actor: User, *, limit: int = 200) -> list[UnknownPoint]:
    """Point codes that reached intake unregistered and are still not registered."""
    codes = visible_scenarios(actor, "case.correct", "overdue.view")
    registered = select(MonitoringPoint.id).where(MonitoringPoint.code == Alert.point_code)
    rows = db.session.execute(
        select(Alert.scenario, Alert.point_code, func.count(), func.min(Alert.received_at),
               func.max(Alert.received_at), func.max(Alert.case_id))
        .where(Alert.unknown_point.is_(True), Alert.scenario.in_(codes), ~registered.exists())
        .group_by(Alert.scenario, Alert.point_code)
        .order_by(func.max(Alert.received_at).desc()).limit(limit)).tuples().all()
    return [UnknownPoint(s, p, int(n), first, last, case_id)
            for s, p, n, first, last, case_id in rows]
