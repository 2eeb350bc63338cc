"""Who may take a task: the lane a user task sits in, read as roles and a scope.

A role lane (`Lane_responder`, ...) means that role over the case's town or scenario. A
department lane (`Lane_emergency`, `Lane_meteorology`, `Lane_departments` with a `department`
property) means that department's people, wherever the case lies: the big loop and the
warning publication reach across departments. Which of its people: the task's `roles`
property (`department_head,business_admin`), business administrators when it has none.
城运中心 acts through the town of the case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

from sqlalchemy import select

from app.extensions import db
from app.models import Case, Department, NodeKind, PlatformNode

# The business roles, lowest first: the order role sets are written in, and the order a
# notice climbs when a lane has nobody in scope.
BUSINESS_ROLES = ("responder", "business_admin", "department_head", "leader_in_charge")
DEFAULT_DEPARTMENT_ROLES = ("business_admin",)
# Technical roles take the tasks of technical cases (feed outages) over the case's area.
TECHNICAL_ROLES = ("tech_admin", "tech_unit_head")


@dataclass(frozen=True)
class Assignee:
    role: str  # one role, or a canonical set for a department lane
    paths: tuple[str, str]  # scope path, scenario path
    department_id: int | None = None


def canonical_roles(roles: Iterable[str]) -> str:
    """A set of business roles as stored on a task: comma-joined, lowest first."""
    wanted = {r.strip() for r in roles if r.strip()}
    return ",".join(r for r in BUSINESS_ROLES if r in wanted)


def role_sets_with(role: str) -> list[str]:
    """Every stored role set a holder of `role` belongs to (for an indexed IN query)."""
    others = [r for r in BUSINESS_ROLES if r != role]
    return [canonical_roles((role, *extra)) for n in range(len(others) + 1)
            for extra in combinations(others, n)]


def roles_of(properties: dict[str, str]) -> tuple[str, ...]:
    """The roles a department lane's task names in its `roles` property."""
    named = [r.strip() for r in properties.get("roles", "").split(",") if r.strip()]
    return tuple(named) or DEFAULT_DEPARTMENT_ROLES


def assignee(case: Case, lane: str, properties: dict[str, str]) -> Assignee:
    """Who may take a task of `case` drawn in `lane` with these BPMN properties."""
    if lane in BUSINESS_ROLES or lane in TECHNICAL_ROLES:
        return Assignee(lane, (case.scope_path, case.scenario_path))
    department = properties.get("department") or lane
    if department == "city_ops":
        return Assignee("business_admin", (case.scope_path, case.scope_path))
    node = department_node(department)
    path = node.path if node is not None else case.scenario_path
    return Assignee(canonical_roles(roles_of(properties)), (path, path),
                    node.department_id if node is not None else None)


def department_node(code: str) -> PlatformNode | None:
    """The highest node a department runs (its sub-platform, else its scenario)."""
    nodes = db.session.scalars(select(PlatformNode).join(
        Department, PlatformNode.department_id == Department.id).where(
        Department.code == code, PlatformNode.kind != NodeKind.VILLAGE)).all()
    return min(nodes, key=lambda n: (len(n.path), n.id), default=None)
