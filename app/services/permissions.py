"""The one permission function: `can(user, action, target)`.

A role held on a node covers that node and everything under it ("谁使用谁管理", Art 3).
Views and services ask `can`/`require`; nowhere else looks at roles to decide access.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from app.models import PlatformNode, Role, User
from app.services.errors import Forbidden

R = Role
_ALL_BUSINESS = frozenset(Role)

# action -> roles that may perform it (within the scope of the node they hold it on)
ACTIONS: dict[str, frozenset[Role]] = {
    "tree.view": _ALL_BUSINESS,
    # Seeing people (names, phone numbers) on a node: personal data, scoped.
    "node.people": _ALL_BUSINESS,
    "accounts.view": frozenset({R.SYSTEM_ADMIN, R.SECURITY_ADMIN, R.TECH_ADMIN,
                                R.TECH_UNIT_HEAD, R.AUDIT_ADMIN}),
    # Open, change, deactivate accounts (Art 15): system administrators and tech administrators.
    "accounts.manage": frozenset({R.SYSTEM_ADMIN, R.TECH_ADMIN}),
    # Assign and revoke roles, unlock accounts, reset passwords: security administrators,
    # and tech administrators for their own platform (Art 15).
    "roles.assign": frozenset({R.SECURITY_ADMIN, R.TECH_ADMIN}),
    "accounts.unlock": frozenset({R.SECURITY_ADMIN, R.TECH_ADMIN}),
    # The separated-administrator roles themselves are handed out by security administrators only.
    "roles.assign_admin": frozenset({R.SECURITY_ADMIN}),
    "audit.view": frozenset({R.AUDIT_ADMIN, R.AUDITOR, R.DISTRICT_OFFICE}),
    "system.status": frozenset({R.TECH_ADMIN, R.TECH_UNIT_HEAD, R.SYSTEM_ADMIN}),
    # Command handbooks (Art 5, 7): business administrators draft, department heads approve.
    "handbook.view": _ALL_BUSINESS,
    # The handbook list in the menu: responders read a handbook through their cases' pages.
    "handbook.list": _ALL_BUSINESS - {R.RESPONDER},
    "handbook.draft": frozenset({R.BUSINESS_ADMIN}),
    "handbook.review": frozenset({R.DEPARTMENT_HEAD}),
    # The process designer and its engine check: the people who write and approve handbooks,
    # for the handbooks of the nodes they hold the role on.
    "handbook.design": frozenset({R.BUSINESS_ADMIN, R.DEPARTMENT_HEAD}),
    # Cases (Art 9): the people of the territory and of the scenario's own line see them.
    "case.view": frozenset({R.LEADER_IN_CHARGE, R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN,
                            R.RESPONDER, R.DISTRICT_OFFICE, R.AUDITOR}),
    "case.act": frozenset({R.LEADER_IN_CHARGE, R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN,
                           R.RESPONDER}),
    "case.correct": frozenset({R.BUSINESS_ADMIN}),
    # Hand a task to a named person (reassign, delegate): department heads and business
    # administrators, over the cases of their nodes.
    "task.assign": frozenset({R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN}),
    "silence.manage": frozenset({R.BUSINESS_ADMIN}),
    "overdue.view": frozenset({R.LEADER_IN_CHARGE, R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN,
                               R.DISTRICT_OFFICE, R.AUDITOR}),
    # The duty board and the risk map: 区安委办's duty officer and each department's people
    # who watch over cases, over their own scope.
    "board.view": frozenset({R.LEADER_IN_CHARGE, R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN,
                             R.DISTRICT_OFFICE, R.AUDITOR}),
    "apikeys.manage": frozenset({R.TECH_ADMIN, R.SYSTEM_ADMIN}),
    # The monitoring-point registry (Art 8): the scenario's and the town's people see it;
    # business and technical administrators keep it; maintenance records likewise (Art 15).
    "points.view": frozenset({R.LEADER_IN_CHARGE, R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN,
                              R.DISTRICT_OFFICE, R.AUDITOR, R.TECH_ADMIN, R.TECH_UNIT_HEAD}),
    "points.manage": frozenset({R.BUSINESS_ADMIN, R.TECH_ADMIN}),
    # Filing of a unit's own operating rules (Art 19): a unit's head or administrator files,
    # 区安委办 acknowledges.
    "filing.submit": frozenset({R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN, R.TECH_UNIT_HEAD}),
    "filing.acknowledge": frozenset({R.DISTRICT_OFFICE}),
    # Cases whose engine step failed: technical administrators see them and retry (audited).
    "case.retry": frozenset({R.TECH_ADMIN, R.SYSTEM_ADMIN}),
    # Weather warnings are drafted by 区气象局 (annex 7): its department head and business
    # administrators, on the bureau's own nodes (see OfDepartment).
    "publication.start": frozenset({R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN}),
    # Figures, monthly and annual reports, bulletins (Art 11, 16, 17): read within the scope
    # held; a business administrator writes a report's narrative, a department head of the
    # node approves and issues it (never the one who wrote it).
    "report.view": frozenset({R.LEADER_IN_CHARGE, R.DEPARTMENT_HEAD, R.BUSINESS_ADMIN,
                              R.DISTRICT_OFFICE, R.AUDITOR}),
    "report.write": frozenset({R.BUSINESS_ADMIN}),
    "report.approve": frozenset({R.DEPARTMENT_HEAD}),
}

# Read-only roles never receive an action that changes something.
READ_ONLY_ROLES = frozenset({R.AUDITOR})
WRITE_ACTIONS = frozenset({"accounts.manage", "roles.assign", "accounts.unlock",
                           "roles.assign_admin", "handbook.draft", "handbook.review",
                           "handbook.design",
                           "case.act", "case.correct", "task.assign", "silence.manage",
                           "apikeys.manage",
                           "publication.start", "case.retry", "points.manage",
                           "filing.submit", "filing.acknowledge", "report.write",
                           "report.approve"})

# Three separated administrators (三员分立): one person holds at most one of these.
SEPARATED_ADMIN_ROLES = frozenset({R.SYSTEM_ADMIN, R.SECURITY_ADMIN, R.AUDIT_ADMIN})

for _action in WRITE_ACTIONS:
    assert not (ACTIONS[_action] & READ_ONLY_ROLES), _action

class Scoped(Protocol):
    """Anything reached through tree paths: a case lies in a town and in a scenario."""

    @property
    def scope_paths(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class OfDepartment:
    """Acting for a department: a role held on one of the department's own nodes (a
    scenario's business administrator acts for its bureau), or on a node covering the
    department's highest node (the district platform covers every bureau)."""

    department_id: int
    path: str  # the department's highest node

    def covered_by(self, node: PlatformNode) -> bool:
        return node.department_id == self.department_id or self.path.startswith(node.path)


Target = PlatformNode | User | Scoped | OfDepartment | None


def _target_paths(target: Target) -> tuple[str, ...] | None:
    if target is None or isinstance(target, OfDepartment):
        return None
    if isinstance(target, User):
        return (target.home_node.path,)
    if isinstance(target, PlatformNode):
        return (target.path,)
    return target.scope_paths


def can(user: User | None, action: str, target: Target = None) -> bool:
    """May `user` perform `action` on `target` (a node, an account, or nothing in particular)?"""
    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return False
    allowed = ACTIONS.get(action)
    if allowed is None:
        raise KeyError(f"unknown action {action!r}")
    paths = _target_paths(target)
    for assignment in user.assignments:
        if assignment.role not in allowed:
            continue
        if isinstance(target, OfDepartment):
            if target.covered_by(assignment.node):
                return True
        elif paths is None or any(p.startswith(assignment.node.path) for p in paths):
            return True
    return False


def holds_role_over(user: User, role: str, paths: Iterable[str]) -> bool:
    """Does `user` hold `role` on a node covering one of `paths`? (task lanes name roles)"""
    wanted = list(paths)
    return user.active and any(
        a.role.value == role and any(p.startswith(a.node.path) for p in wanted)
        for a in user.assignments)


class TaskLane(Protocol):
    """An inbox task as far as who may take it is concerned."""

    @property
    def role(self) -> str: ...

    @property
    def department_id(self) -> int | None: ...

    @property
    def scope_paths(self) -> tuple[str, ...]: ...


def may_take(user: User, task: TaskLane) -> bool:
    """Does `user` belong to the task's lane? A role lane: the role on a node covering the
    case; a department lane: one of its roles on a node of that department or covering the
    department's node (the task's paths)."""
    if task.department_id is None:
        return holds_role_over(user, task.role, task.scope_paths)
    roles = set(task.role.split(","))
    return user.active and any(
        a.role.value in roles and (a.node.department_id == task.department_id
                                   or any(p.startswith(a.node.path) for p in task.scope_paths))
        for a in user.assignments)


def _scope_name(target: Target) -> str | None:
    """The name of the platform node a target belongs to, for a refusal to say."""
    if isinstance(target, PlatformNode):
        return target.name
    if isinstance(target, User):
        return target.home_node.name if target.home_node else None
    node = getattr(target, "node", None)
    return node.name if isinstance(node, PlatformNode) else None


def require(user: User | None, action: str, target: Target = None) -> None:
    """Refuse unless `user` may; the refusal names the scope it belongs to and the roles that
    may do it, so that the person knows whom to ask."""
    if not can(user, action, target):
        from app.i18n import _l

        details: dict[str, object] = {"action": action,
                                      "roles": sorted(r.value for r in ACTIONS[action])}
        scope = _scope_name(target)
        if scope:
            details["scope"] = scope
        raise Forbidden(_l("You do not have permission for this, or it is outside your scope."),
                        details=details)


def scope_paths(user: User, action: str) -> list[str]:
    """Paths of the nodes on which `user` may perform `action`; for scoped queries."""
    allowed = ACTIONS[action]
    paths = sorted({a.node.path for a in user.assignments if a.role in allowed})
    # Drop paths already covered by a shorter one.
    kept: list[str] = []
    for path in paths:
        if not any(path.startswith(k) for k in kept):
            kept.append(path)
    return kept


def roles_conflict(roles: Iterable[Role]) -> bool:
    return len(SEPARATED_ADMIN_ROLES & set(roles)) > 1
