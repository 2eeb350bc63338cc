"""The inbox: tasks a person can act on, overdue first. One query for the page and the API."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, false, func, literal_column, or_, select
from sqlalchemy.orm import joinedload
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
    """One page of the inbox with the counts of its filter bar: two statements, one for the
    counts (every facet and the total from one grouped scan of the user's ready tasks) and
    one for the page's rows with their cases and claimers."""
    flt = flt or InboxFilter()
    groups = _groups(user, flt, now)
    overdue_first = case((CaseTask.due_at < now, 0), else_=1)
    level_rank = case(*[(CaseTask.level == lv, -rank) for lv, rank in LEVEL_RANK.items()],
                      else_=0)
    # The page is sorted and cut on the task rows alone; only its rows are joined to their
    # cases and claimers (with what those load), in the same statement.
    keys = [overdue_first.label("k1"), CaseTask.due_at.is_(None).label("k2"),
            CaseTask.due_at.label("k3"), level_rank.label("k4"), CaseTask.id.label("k5")]
    cut = (_filtered(user, flt, now).with_only_columns(*keys)
           .order_by(*[k.element for k in keys])
           .offset((max(page, 1) - 1) * per_page).limit(per_page).subquery())
    items = db.session.scalars(
        select(CaseTask).join(cut, cut.c.k5 == CaseTask.id)
        .options(joinedload(CaseTask.case), joinedload(CaseTask.claimed_by))
        .order_by(cut.c.k1, cut.c.k2, cut.c.k3, cut.c.k4, cut.c.k5)).unique().all()
    total = sum(g.n for g in groups if _matches(g, flt))
    return InboxPage(list(items), total, max(page, 1), per_page, _facets(groups, flt))


def counts(user: User, *, now: datetime) -> dict[str, Any]:
    """Counts of the whole inbox, no filter applied."""
    return _facets(_groups(user, InboxFilter(), now), InboxFilter())


@dataclass(frozen=True)
class _Group:
    """Ready tasks of the user alike in everything a filter of the inbox can ask."""

    level: str | None
    scenario: str
    node_id: int
    node_name: str
    node_path: str
    overdue: bool
    mine: bool
    claimable: bool
    in_town: bool  # within the filter's town (true without one)
    numbered: bool  # the case number holds the filter's text (true without one)
    n: int


def _groups(user: User, flt: InboxFilter, now: datetime) -> list[_Group]:
    """The user's ready tasks counted by level, scenario, node and the yes/no answers of the
    other filters: a few hundred rows at most, from which every count is summed."""
    def flag(condition: Any) -> Any:
        return case((condition, 1), else_=0)

    in_town: Any = 1
    if flt.town_node_id:
        town = db.session.get(PlatformNode, flt.town_node_id)
        in_town = flag(Case.scope_path.startswith(town.path)) if town else 0
    numbered: Any = 1
    if flt.case_no:
        numbered = flag(Case.case_no.contains(flt.case_no.strip(), autoescape=True))
    columns = [CaseTask.level, Case.scenario, Case.node_id, PlatformNode.name,
               PlatformNode.path, flag(CaseTask.due_at < now),
               flag(CaseTask.claimed_by_id == user.id), flag(CaseTask.claimed_by_id.is_(None))]
    # A filter not in use is a constant, selected but not grouped by (a number in GROUP BY
    # would name a column by its position).
    optional = [literal_column(str(v)) if isinstance(v, int) else v for v in (in_town, numbered)]
    rows = db.session.execute(
        select(*columns, *optional, func.count())
        .select_from(CaseTask).join(Case, CaseTask.case_id == Case.id)
        .join(PlatformNode, PlatformNode.id == Case.node_id)
        .where(CaseTask.status == "ready", Case.is_test.is_(False), _eligible(user))
        .group_by(*columns, *[v for v in (in_town, numbered) if not isinstance(v, int)])
        ).tuples().all()
    return [_Group(level, scenario, node_id, name, path, bool(overdue), bool(mine),
                   bool(claimable), bool(town), bool(number), int(n))
            for level, scenario, node_id, name, path, overdue, mine, claimable, town, number, n
            in rows]


def _matches(g: _Group, flt: InboxFilter, *, skip: str = "") -> bool:
    """Whether the tasks of a group pass the filter, leaving out the dimension `skip`."""
    return ((skip == "status" or flt.status == "ready" or (flt.status == "mine" and g.mine)
             or (flt.status == "claimable" and g.claimable))
            and (skip == "scenario" or not flt.scenario or g.scenario == flt.scenario)
            and (skip == "level" or not flt.level or g.level == flt.level)
            and (skip == "town" or g.in_town)
            and (skip == "overdue" or not flt.overdue_only or g.overdue)
            and g.numbered)


def _facets(groups: list[_Group], flt: InboxFilter) -> dict[str, Any]:
    """The counts of the filter bar, following the other filters: each choice counts the tasks
    the inbox would list if it were picked with the rest of the filter kept (the page and the
    API show the same numbers)."""
    any_status = replace(flt, status="ready", overdue_only=False)
    by_level: dict[Any, int] = {}
    scenarios: dict[str, int] = {}
    by_node: dict[int, int] = {}
    places: dict[int, tuple[str, str]] = {}
    for g in groups:
        if _matches(g, flt, skip="level"):
            by_level[g.level] = by_level.get(g.level, 0) + g.n
        if _matches(g, flt, skip="scenario"):
            scenarios[g.scenario] = scenarios.get(g.scenario, 0) + g.n
        if _matches(g, flt, skip="town"):
            by_node[g.node_id] = by_node.get(g.node_id, 0) + g.n
            places[g.node_id] = (g.node_path, g.node_name)
    return {
        "total": sum(g.n for g in groups if _matches(g, any_status)),
        "mine": sum(g.n for g in groups if _matches(g, replace(any_status, status="mine"))),
        "overdue": sum(g.n for g in groups if _matches(g, replace(flt, overdue_only=True))),
        "by_level": by_level,
        "scenarios": scenarios,
        "towns": [(i, places[i][1], by_node[i]) for i in sorted(by_node, key=lambda i: places[i])],
    }
