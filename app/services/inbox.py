"""The inbox: tasks a person can act on, overdue first. One query for the page and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import LEVEL_RANK, Case, CaseTask, PlatformNode, User
from app.services.lanes import BUSINESS_ROLES, role_sets_with


@dataclass(frozen=True)
class InboxFilter:
    scenario: str | None = None
    level: str | None = None
    town_node_id: int | None = None
    status: str = "ready"  # ready / mine / claimable
    overdue_only: bool = False
    case_no: str | None = None


@dataclass
class InboxPage:
    items: list[CaseTask]
    total: int
    page: int
    per_page: int
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _eligible(user: User) -> ColumnElement[bool]:
    """Tasks assigned to the user, or open to claim through one of the user's roles: a role
    lane over the case's town or scenario, or a department lane of the department whose node
    the role is held on or whose node it covers (permissions.may_take says the same for one
    task)."""
    by_role: list[ColumnElement[bool]] = []
    for assignment in user.assignments:
        path = assignment.node.path
        by_role.append(and_(CaseTask.role == assignment.role.value,
                            CaseTask.department_id.is_(None),
                            or_(CaseTask.scope_path.startswith(path),
                                CaseTask.scenario_path.startswith(path))))
        if assignment.role.value in BUSINESS_ROLES:
            own = CaseTask.scope_path.startswith(path)
            if assignment.node.department_id is not None:
                own = or_(own, CaseTask.department_id == assignment.node.department_id)
            by_role.append(and_(CaseTask.department_id.is_not(None),
                                CaseTask.role.in_(role_sets_with(assignment.role.value)), own))
    claimable = and_(CaseTask.claimed_by_id.is_(None), or_(*by_role)) if by_role else None
    mine = CaseTask.claimed_by_id == user.id
    return or_(mine, claimable) if claimable is not None else mine


def _filtered(user: User, flt: InboxFilter, now: datetime) -> Any:
    query = select(CaseTask).join(Case, CaseTask.case_id == Case.id).where(
        CaseTask.status == "ready", Case.is_test.is_(False), _eligible(user))
    if flt.status == "mine":
        query = query.where(CaseTask.claimed_by_id == user.id)
    elif flt.status == "claimable":
        query = query.where(CaseTask.claimed_by_id.is_(None))
    if flt.scenario:
        query = query.where(Case.scenario == flt.scenario)
    if flt.level:
        query = query.where(CaseTask.level == flt.level)
    if flt.town_node_id:
        town = db.session.get(PlatformNode, flt.town_node_id)
        # The town and its villages.
        query = query.where(Case.scope_path.startswith(town.path) if town else false())
    if flt.overdue_only:
        query = query.where(CaseTask.due_at < now)
    if flt.case_no:
        query = query.where(Case.case_no.contains(flt.case_no.strip()))
    return query


def inbox(user: User, flt: InboxFilter | None = None, *, now: datetime, page: int = 1,
          per_page: int = 25) -> InboxPage:
    flt = flt or InboxFilter()
    query = _filtered(user, flt, now)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    overdue_first = case((CaseTask.due_at < now, 0), else_=1)
    level_rank = case(*[(CaseTask.level == lv, -rank) for lv, rank in LEVEL_RANK.items()],
                      else_=0)
    items = db.session.scalars(
        query.order_by(overdue_first, CaseTask.due_at.is_(None), CaseTask.due_at, level_rank,
                       CaseTask.id)
        .offset((max(page, 1) - 1) * per_page).limit(per_page)).all()
    return InboxPage(list(items), total, max(page, 1), per_page, counts(user, now=now))


def counts(user: User, *, now: datetime) -> dict[str, Any]:
    """Counts per filter value, for the filter bar (one grouped query each)."""
    base = select(CaseTask).join(Case, CaseTask.case_id == Case.id).where(
        CaseTask.status == "ready", Case.is_test.is_(False), _eligible(user)).subquery()
    by_level = dict(db.session.execute(
        select(base.c.level, func.count()).group_by(base.c.level)).tuples().all())
    overdue = db.session.scalar(select(func.count()).select_from(base).where(
        base.c.due_at < now)) or 0
    mine = db.session.scalar(select(func.count()).select_from(base).where(
        base.c.claimed_by_id == user.id)) or 0
    total = sum(by_level.values())
    return {"total": total, "overdue": overdue, "mine": mine,
            "by_level": {k: int(v) for k, v in by_level.items()}}
