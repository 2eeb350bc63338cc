"""Lanes with nobody in scope (a data-quality rule, Art 9): for every published handbook,
each lane its tasks and notices are meant for, at every town a case may lie in (or at the
department a department lane belongs to), is somebody there to take it? Run daily; the
findings are listed beside the other data-quality issues until somebody holds the role."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import (
    Department,
    HandbookVersion,
    Heartbeat,
    PlatformNode,
    RoleAssignment,
    StaffingGap,
    User,
    VersionStatus,
)
from app.services import org
from app.services.bpmn_index import index_for
from app.services.lanes import BUSINESS_ROLES, department_node, roles_of
from app.services.permissions import require, scope_paths
from app.services.scenarios import in_scope

SCAN_HEARTBEAT = "staffing_scan"
SCAN_EVERY = timedelta(days=1)
VIEW_ACTION = "overdue.view"
HUMAN = frozenset({"userTask", "manualTask"})
CITY_OPS = "city_ops"


@dataclass(frozen=True)
class Lane:
    """One lane to staff: `process_key` (scenario, or shared process for a department lane),
    the lane's code, the roles that fill it and, for a department lane, its department."""

    process_key: str
    lane: str
    roles: tuple[str, ...]
    department: str | None = None


def _prefixes(path: str) -> list[str]:
    """"/1/5/9/" -> ["/1/", "/1/5/", "/1/5/9/"]: the nodes a role covering `path` may sit on."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:n]) + "/" for n in range(1, len(parts) + 1)]


def lanes_of(version: HandbookVersion) -> list[Lane]:
    """The lanes a published version's people are expected in: its user tasks' lanes and
    the roles its notices name."""
    index = index_for(version.content_hash, lambda: version.files)
    found: dict[tuple[str, str], Lane] = {}
    for facts in index.elements.values():
        if facts.kind in HUMAN and facts.role:
            if facts.role in BUSINESS_ROLES:
                found.setdefault((version.handbook_key, facts.role),
                                 Lane(version.handbook_key, facts.role, (facts.role,)))
            elif (facts.properties.get("department") or facts.role) == CITY_OPS:
                found.setdefault((version.handbook_key, CITY_OPS),
                                 Lane(version.handbook_key, CITY_OPS, ("business_admin",)))
            else:
                department = facts.properties.get("department") or facts.role
                found.setdefault((facts.process_id, department), Lane(
                    facts.process_id, department, roles_of(facts.properties), department))
        for role in facts.properties.get("notify", "").split(","):
            if role.strip() in BUSINESS_ROLES:
                found.setdefault((version.handbook_key, role.strip()),
                                 Lane(version.handbook_key, role.strip(), (role.strip(),)))
    return list(found.values())


@dataclass(frozen=True)
class _Holders:
    """Who holds which role where: node paths per role, departments per role."""

    paths: dict[str, set[str]]
    departments: dict[str, set[int]]

    def covers(self, role: str, *paths: str) -> bool:
        held = self.paths.get(role, set())
        return any(prefix in held for path in paths for prefix in _prefixes(path))

    def in_department(self, roles: Iterable[str], department_id: int) -> bool:
        return any(department_id in self.departments.get(role, set()) for role in roles)


def _holders() -> _Holders:
    rows = db.session.execute(
        select(RoleAssignment.role, PlatformNode.path, PlatformNode.department_id)
        .join(User, RoleAssignment.user_id == User.id)
        .join(PlatformNode, RoleAssignment.node_id == PlatformNode.id)
        .where(User.active.is_(True))).all()
    paths: dict[str, set[str]] = {}
    departments: dict[str, set[int]] = {}
    for role, path, department_id in rows:
        paths.setdefault(role.value, set()).add(path)
        if department_id is not None:
            departments.setdefault(role.value, set()).add(department_id)
    return _Holders(paths, departments)


def find_gaps() -> list[tuple[Lane, PlatformNode, str | None]]:
    """(lane, node, scenario path) for every lane with nobody in scope at a node."""
    holders = _holders()
    places = org.places()
    published = db.session.scalars(select(HandbookVersion).where(
        HandbookVersion.status == VersionStatus.PUBLISHED).order_by(HandbookVersion.id)).all()
    departments = {d.code: d for d in db.session.scalars(select(Department))}
    gaps: dict[tuple[str, str, int], tuple[Lane, PlatformNode, str | None]] = {}
    for version in published:
        node = version.node
        # A scenario's cases lie in the towns; a publication lies on its own node.
        scenario = node.code.startswith("scenario.")
        for lane in lanes_of(version):
            if lane.department is not None:
                owner = departments.get(lane.department)
                home = department_node(lane.department)
                if owner is not None and home is not None and \
                        not holders.in_department(lane.roles, owner.id) and \
                        not any(holders.covers(role, home.path) for role in lane.roles):
                    gaps[(lane.process_key, lane.lane, home.id)] = (lane, home, None)
                continue
            for place in (places if scenario else [node]):
                if lane.lane == CITY_OPS:
                    covered = holders.covers("business_admin", place.path)
                else:
                    covered = holders.covers(lane.lane, place.path, node.path)
                if not covered:
                    gaps[(lane.process_key, lane.lane, place.id)] = (lane, place, node.path)
    return list(gaps.values())


@dataclass
class ScanResult:
    open: int = 0
    new: int = 0
    resolved: int = 0


def scan(now: datetime) -> ScanResult:
    """Record today's gaps: new ones added, known ones seen again, vanished ones resolved."""
    found = find_gaps()
    known = {(g.process_key, g.lane, g.node_id): g for g in db.session.scalars(
        select(StaffingGap))}
    result = ScanResult(open=len(found))
    seen = set()
    for lane, node, scenario_path in found:
        key = (lane.process_key, lane.lane, node.id)
        seen.add(key)
        row = known.get(key)
        if row is None:
            db.session.add(StaffingGap(process_key=lane.process_key, lane=lane.lane,
                                       roles=",".join(lane.roles), node_id=node.id,
                                       scenario_path=scenario_path, first_seen_at=now,
                                       last_seen_at=now))
            result.new += 1
            continue
        if row.resolved_at is not None:  # gone and come back: a new finding
            row.first_seen_at, row.resolved_at = now, None
            result.new += 1
        row.last_seen_at = now
    for key, row in known.items():
        if key not in seen and row.resolved_at is None:
            row.resolved_at = now
            result.resolved += 1
    db.session.flush()
    return result


def scan_if_due(now: datetime) -> ScanResult | None:
    """The scheduled scan: once a day (the scheduler asks more often)."""
    beat = db.session.get(Heartbeat, SCAN_HEARTBEAT)
    if beat is not None and now - beat.beat_at < SCAN_EVERY:
        return None
    result = scan(now)
    if beat is None:
        beat = Heartbeat(name=SCAN_HEARTBEAT, beat_at=now)
        db.session.add(beat)
    beat.beat_at = now
    beat.detail = f"open {result.open}, new {result.new}, resolved {result.resolved}"
    db.session.flush()
    return result


@dataclass(frozen=True)
class GapGroup:
    """One lane of one handbook or process, and the places where nobody is in scope."""

    process_key: str
    lane: str
    roles: tuple[str, ...]
    places: list[str]
    since: datetime


def open_gaps(actor: User) -> list[GapGroup]:
    """The open gaps in `actor`'s scope, one group per lane, for the data-quality page."""
    require(actor, VIEW_ACTION)
    paths = scope_paths(actor, VIEW_ACTION)
    rows = db.session.execute(
        select(StaffingGap, PlatformNode.name)
        .join(PlatformNode, StaffingGap.node_id == PlatformNode.id)
        .where(StaffingGap.resolved_at.is_(None),
               in_scope(paths, PlatformNode.path, StaffingGap.scenario_path))
        .order_by(StaffingGap.process_key, StaffingGap.lane, PlatformNode.path)).tuples().all()
    groups: dict[tuple[str, str], GapGroup] = {}
    for gap, name in rows:
        group = groups.setdefault((gap.process_key, gap.lane), GapGroup(
            gap.process_key, gap.lane, tuple(gap.roles.split(",")), [], gap.first_seen_at))
        group.places.append(name)
        if gap.first_seen_at < group.since:
            groups[(gap.process_key, gap.lane)] = GapGroup(
                group.process_key, group.lane, group.roles, group.places, gap.first_seen_at)
    return list(groups.values())


def department_names() -> dict[str, str]:
    """Department code -> name, for naming department lanes."""
    return dict(db.session.execute(select(Department.code, Department.name)).tuples().all())
