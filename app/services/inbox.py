"""The inbox: tasks a person can act on, overdue first. One query for the page and the API."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.orm import selectinload
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
        query = query.where(Case.case_no.contains(flt.case_no.strip(), autoescape=True))
    return query


def inbox(user: User, flt: InboxFilter | None = None, *, now: datetime, page: int = 1,
          per_page: int = 25) -> InboxPage:
    flt = flt or InboxFilter()
    query = _filtered(user, flt, now)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    overdue_first = case((CaseTask.due_at < now, 0), else_=1)
    level_rank = case(*[(CaseTask.level == lv, -rank) for lv, rank in LEVEL_RANK.items()],
                      else_=0)
    # Sort and cut the page on the task rows alone; the case and the claimer (and what they
    # load with them) are read for the page's rows only, not joined to every eligible task.
    items = db.session.scalars(
        query.options(selectinload(CaseTask.case), selectinload(CaseTask.claimed_by))
        .order_by(overdue_first, CaseTask.due_at.is_(None), CaseTask.due_at, level_rank,
                  CaseTask.id)
        .offset((max(page, 1) - 1) * per_page).limit(per_page)).all()
    return InboxPage(list(items), total, max(page, 1), per_page, facets(user, flt, now=now))


def counts(user: User, *, now: datetime) -> dict[str, Any]:
    """Counts of the whole inbox, no filter applied."""
    return facets(user, InboxFilter(), now=now)


def _count(user: User, flt: InboxFilter, now: datetime) -> int:
    query = _filtered(user, flt, now)
    return int(db.session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _grouped(user: User, flt: InboxFilter, now: datetime, column: Any) -> dict[Any, int]:
    query = _filtered(user, flt, now).with_only_columns(column, func.count()).group_by(column)
    return {key: int(n) for key, n in db.session.execute(query).tuples().all()}


def facets(user: User, flt: InboxFilter, *, now: datetime) -> dict[str, Any]:
    """The counts of the filter bar, following the other filters: each choice counts the tasks
    the inbox would list if it were picked with the rest of the filter kept (the page and the
    API show the same numbers)."""
    any_status = replace(flt, status="ready", overdue_only=False)
    by_node = _grouped(user, replace(flt, town_node_id=None), now, Case.node_id)
    towns = db.session.execute(select(PlatformNode.id, PlatformNode.name).where(
        PlatformNode.id.in_(list(by_node))).order_by(PlatformNode.path)).tuples().all()
    return {
        "total": _count(user, any_status, now),
        "mine": _count(user, replace(any_status, status="mine"), now),
        "overdue": _count(user, replace(flt, overdue_only=True), now),
        "by_level": _grouped(user, replace(flt, level=None), now, CaseTask.level),
        "scenarios": _grouped(user, replace(flt, scenario=None), now, Case.scenario),
        "towns": [(i, n, by_node[i]) for i, n in towns],
    }
