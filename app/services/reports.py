"""Monthly and annual reports (Art 11) and the district bulletin (Art 16, 17).

The scheduler generates a report per platform node and period; a business administrator of the
node writes the narrative sections (工作情况, 存在问题, 下步工作) and submits it; a department head
of the node who did not write it approves it, which issues it: the figures are frozen into the
report, the SHA-256 of its canonical form goes into the audit trail, and from then on the
database refuses to change it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.i18n import _l
from app.models import (
    NARRATIVE_SECTIONS,
    ApiKey,
    Department,
    NodeKind,
    PlatformNode,
    Report,
    User,
)
from app.services import audit, feeds, figure_lists, figures
from app.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.services.figures import Period, Scope, reports_session
from app.services.permissions import OfDepartment, Target, can, require, scope_paths
from app.timezone import local_zone

MAX_SECTION_CHARS = 5000
# The platform levels that get their own report (Art 2, 11).
REPORTED_KINDS = (NodeKind.DISTRICT, NodeKind.INDUSTRY, NodeKind.LINGANG, NodeKind.TOWN)
SECTION_LABELS = {"work": _l("Work done"), "problems": _l("Problems to solve"),
                  "next_steps": _l("Next steps")}
KIND_LABELS = {"monthly": _l("Monthly report"), "annual": _l("Annual report")}
STATUS_LABELS = {"draft": _l("Draft"), "submitted": _l("Awaiting approval"),
                 "issued": _l("Issued")}

# Which breakdowns a report of each platform level carries.
BREAKDOWNS = {
    NodeKind.DISTRICT.value: ("industry", "scenario", "department", "town"),
    NodeKind.INDUSTRY.value: ("scenario", "town"),
    NodeKind.SCENARIO.value: ("town",),
    NodeKind.LINGANG.value: ("scenario", "department"),
    NodeKind.TOWN.value: ("scenario", "department"),
    NodeKind.VILLAGE.value: ("scenario",),
    "department": ("scenario", "town"),
}


# ---------------------------------------------------------------------------------------------
# Who may see which scope


def scope_target(scope: Scope) -> Target:
    """The permission target of a scope: its node, or acting for its department."""
    if scope.kind == "department":
        session = reports_session()
        node = session.scalar(select(PlatformNode).where(
            PlatformNode.department_id == scope.department_id)
            .order_by(PlatformNode.path).limit(1))
        return OfDepartment(scope.department_id or 0, node.path if node else "/none/")
    return scope


def require_scope(actor: User, scope: Scope) -> None:
    require(actor, "report.view", scope_target(scope))


CHOOSABLE_KINDS = (NodeKind.DISTRICT, NodeKind.INDUSTRY, NodeKind.SCENARIO, NodeKind.LINGANG,
                   NodeKind.TOWN)


def scope_choices(actor: User) -> list[Scope]:
    """The scopes the actor may see figures of: platform nodes down to the towns, and the
    owner departments they act for."""
    from sqlalchemy import or_

    paths = scope_paths(actor, "report.view")
    if not paths:
        return []
    session = reports_session()
    nodes = session.scalars(select(PlatformNode).where(
        PlatformNode.kind.in_(CHOOSABLE_KINDS),
        or_(*[PlatformNode.path.startswith(p, autoescape=True) for p in paths]))
        .order_by(PlatformNode.path)).all()
    found = [Scope.of_node(n) for n in nodes]
    for department in session.scalars(select(Department).order_by(Department.id)):
        scope = Scope.of_department(department)
        if can(actor, "report.view", scope_target(scope)):
            found.append(scope)
    return found


def default_scope(actor: User) -> Scope:
    """The widest node the actor may see figures of."""
    paths = scope_paths(actor, "report.view")
    if not paths:
        raise Forbidden(_l("You do not have permission for this, or it is outside your scope."),
                        details={"action": "report.view"})
    node = reports_session().scalar(select(PlatformNode).where(
        PlatformNode.path == sorted(paths, key=len)[0]))
    assert node is not None
    return Scope.of_node(node)


# ---------------------------------------------------------------------------------------------
# The content of a report: everything the figures module says about a scope and period


def compose(scope: Scope, period: Period, *, now: datetime) -> dict[str, Any]:
    """The figures of a report as plain JSON (what an issued report freezes)."""
    found = figures.summary(scope, period, (*BREAKDOWNS.get(scope.kind, ()), "level"), now=now)
    comparison = figures.compare(scope, period, now=now, current=found.totals)
    content: dict[str, Any] = {
        "scope": {"kind": scope.kind, "code": scope.code, "name": scope.name},
        "period": {"kind": period.kind, "code": period.code, "start": period.start.isoformat(),
                   "end": period.end.isoformat()},
        "computed_at": now.isoformat(),
        "current": comparison.current, "previous": comparison.previous,
        "last_year": comparison.last_year,
        "breakdowns": {},
        "levels": {},
        "trend": figure_lists.trend(scope, period),
        "alerts": figure_lists.alerts(scope, period),
        "quality": figure_lists.quality(scope, period),
        "overdue_cases": figure_lists.overdue_cases(scope, period, now=now),
    }
    content["feeds"] = feed_quality(scope, period, now=now)
    grouped = found.breakdowns
    content["levels"] = {r.group.code: r.values["opened"] for r in grouped.pop("level")
                         if r.values["opened"]}
    for by, rows in grouped.items():
        content["breakdowns"][by] = [
            {"code": r.group.code, "name": r.group.name, "drill": r.group.drill,
             "values": r.values} for r in rows]
    return content


def feed_quality(scope: Scope, period: Period, *, now: datetime) -> list[dict[str, Any]]:
    """Art 8 for a report: completeness, timeliness, accuracy and online rate of each source
    system reporting for the scope's scenarios, over the period up to now. Sources are not
    bound to towns or departments: their reports leave this out."""
    start, end = period.start_utc, min(period.end_utc, now)
    if end <= start or scope.kind not in ("district", "industry", "scenario"):
        return []
    found = feeds.feed_figures(start, end)
    if scope.kind != "district":
        wanted = {n.code.removeprefix("scenario.") for n in db.session.scalars(
            select(PlatformNode).where(PlatformNode.kind == NodeKind.SCENARIO,
                                       PlatformNode.path.startswith(scope.path)))}
        keys = {k.id: set(k.scenarios) for k in db.session.scalars(
            select(ApiKey).where(ApiKey.id.in_([f.api_key_id for f in found])))}
        found = [f for f in found if keys.get(f.api_key_id, set()) & wanted]
    return [f.to_dict() for f in found]


def canonical(report: Report) -> bytes:
    """The issued document as canonical JSON: what its SHA-256 is taken over."""
    body = {"doc_no": report.doc_no, "title": report.title, "kind": report.kind,
            "node": report.node.code, "period_start": report.period_start.isoformat(),
            "period_end": report.period_end.isoformat(), "narrative": report.narrative,
            "figures": report.snapshot,
            "issued_at": report.issued_at.isoformat() if report.issued_at else None,
            "approved_by": report.reviewed_by.username if report.reviewed_by else None}
    return json.dumps(body, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode()


def content_of(report: Report, *, now: datetime) -> dict[str, Any]:
    """An issued report's frozen figures; a draft's figures as they are now."""
    if report.snapshot is not None:
        return report.snapshot
    return compose(Scope.of_node(report.node), period_of(report), now=now)


def period_of(report: Report) -> Period:
    if report.kind == "annual":
        return Period.year(report.period_start.year)
    return Period.month(report.period_start.year, report.period_start.month)


# ---------------------------------------------------------------------------------------------
# Generation (the scheduler)


def _doc_no(kind: str, period: Period, node: PlatformNode) -> str:
    if kind == "annual":
        return f"浦城安年〔{period.start.year}〕{node.id:04d}号"
    return f"浦城安月〔{period.start.year}〕{period.start.month:02d}-{node.id:04d}号"


def _title(kind: str, period: Period, node: PlatformNode) -> str:
    if kind == "annual":
        return str(_l("%(node)s %(period)s annual report on urban-safety monitoring and "
                      "early warning", node=node.name, period=period.label))
    return str(_l("%(node)s %(period)s monthly report on urban-safety monitoring and "
                  "early warning", node=node.name, period=period.label))


def due_periods(now: datetime) -> list[tuple[str, Period]]:
    """The reports due by `now`: last month's, and in January last year's."""
    today = now.astimezone(local_zone()).date()
    this_month = Period.month(today.year, today.month)
    due = [("monthly", this_month.previous())]
    if today.month == 1:
        due.append(("annual", Period.year(today.year - 1)))
    return due


def generate_due(now: datetime) -> list[Report]:
    """Create the due reports that do not exist yet, for every reported platform level.
    Idempotent: run on the 1st (and again after a restart) it makes each report once."""
    session = reports_session()
    nodes = session.scalars(select(PlatformNode).where(PlatformNode.kind.in_(REPORTED_KINDS))
                            .order_by(PlatformNode.path)).all()
    made: list[Report] = []
    for kind, period in due_periods(now):
        existing = set(session.scalars(select(Report.node_id).where(
            Report.kind == kind, Report.period_start == period.start)))
        for node in nodes:
            if node.id in existing:
                continue
            report = Report(kind=kind, node_id=node.id, node=node, period_start=period.start,
                            period_end=period.end, doc_no=_doc_no(kind, period, node),
                            title=_title(kind, period, node), status="draft", narrative={},
                            generated_at=now)
            try:
                with session.begin_nested():
                    session.add(report)
            except IntegrityError:  # another scheduler made it at the same moment
                continue
            made.append(report)
    return made


# ---------------------------------------------------------------------------------------------
# Listing and reading


def visible_reports(actor: User, *, limit: int = 200) -> list[Report]:
    paths = scope_paths(actor, "report.view")
    if not paths:
        return []
    from sqlalchemy import or_

    query = (select(Report).join(PlatformNode, PlatformNode.id == Report.node_id)
             .where(or_(*[PlatformNode.path.startswith(p, autoescape=True) for p in paths]))
             .order_by(Report.period_start.desc(), Report.kind, PlatformNode.path).limit(limit))
    return list(reports_session().scalars(query))


def get_report(actor: User, report_id: int) -> Report:
    report = reports_session().get(Report, report_id)
    if report is None:
        raise NotFound(_l("No such report."))
    require(actor, "report.view", report)
    return report


# ---------------------------------------------------------------------------------------------
# Writing, submitting, approving


def _snapshot(report: Report) -> dict[str, Any]:
    return {"doc_no": report.doc_no, "status": report.status,
            "narrative": dict(report.narrative or {})}


def _editable(report: Report) -> None:
    if report.status == "issued":
        raise Conflict(_l("This report is issued and can no longer change."),
                       code="report_issued")


def _draft(actor: User, report_id: int) -> Report:
    """A report its writer may still change: a draft (new, or returned by the reviewer)."""
    report = get_report(actor, report_id)
    require(actor, "report.write", report)
    _editable(report)
    if report.status != "draft":
        raise Conflict(_l("The report awaits approval; it can be changed once it is returned."),
                       code="report_submitted")
    return report


def write(actor: User, report_id: int, narrative: dict[str, str], *, now: datetime) -> Report:
    """Save the narrative sections of a draft (blank sections may stay blank until submit)."""
    report = _draft(actor, report_id)
    problems: dict[str, list[str]] = {}
    cleaned: dict[str, str] = {}
    for section in NARRATIVE_SECTIONS:
        text = str(narrative.get(section) or "").replace("\r\n", "\n").strip()
        if len(text) > MAX_SECTION_CHARS:
            problems[section] = [str(_l("At most %(n)d characters.", n=MAX_SECTION_CHARS))]
        cleaned[section] = text
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."), details=problems)
    before = _snapshot(report)
    report.narrative = cleaned
    report.written_by_id, report.written_at = actor.id, now
    reports_session().flush()
    audit.record(actor=actor, action="report.write", object_type="report",
                 object_id=report.id, before=before, after=_snapshot(report), at=now)
    return report


def submit(actor: User, report_id: int, *, now: datetime) -> Report:
    report = _draft(actor, report_id)
    missing = {s: [str(_l("Required."))] for s in NARRATIVE_SECTIONS
               if not str((report.narrative or {}).get(s) or "").strip()}
    if missing:
        raise ValidationFailed(_l("Write every section before submitting."), details=missing)
    before = _snapshot(report)
    report.status, report.submitted_at = "submitted", now
    reports_session().flush()
    audit.record(actor=actor, action="report.submit", object_type="report",
                 object_id=report.id, before=before, after=_snapshot(report), at=now)
    return report


def _reviewable(actor: User, report_id: int) -> Report:
    report = get_report(actor, report_id)
    require(actor, "report.approve", report)
    _editable(report)
    if report.status != "submitted":
        raise Conflict(_l("Only a submitted report can be approved or returned."),
                       code="report_not_submitted")
    if report.written_by_id == actor.id:
        raise Forbidden(_l("You wrote this report; another person must approve it."),
                        code="separation_of_duties")
    return report


def approve(actor: User, report_id: int, *, comment: str, now: datetime) -> Report:
    """Issue the report: freeze its figures, hash it, record the hash in the audit trail."""
    report = _reviewable(actor, report_id)
    before = _snapshot(report)
    report.snapshot = compose(Scope.of_node(report.node), period_of(report), now=now)
    report.reviewed_by_id, report.reviewed_by = actor.id, actor
    report.reviewed_at, report.issued_at = now, now
    report.review_comment = comment.strip()[:2000] or None
    report.sha256 = hashlib.sha256(canonical(report)).hexdigest()
    report.status = "issued"
    reports_session().flush()
    audit.record(actor=actor, action="report.issue", object_type="report",
                 object_id=report.id, before=before,
                 after={"doc_no": report.doc_no, "status": "issued", "sha256": report.sha256},
                 at=now)
    return report


def return_report(actor: User, report_id: int, *, reason: str, now: datetime) -> Report:
    report = _reviewable(actor, report_id)
    if not reason.strip():
        raise ValidationFailed(_l("Say why the report is returned."),
                               details={"comment": [str(_l("Required."))]})
    before = _snapshot(report)
    report.status = "draft"
    report.reviewed_by_id, report.reviewed_at = actor.id, now
    report.review_comment = reason.strip()[:2000]
    reports_session().flush()
    audit.record(actor=actor, action="report.return", object_type="report",
                 object_id=report.id, before=before,
                 after={**_snapshot(report), "reason": report.review_comment}, at=now)
    return report


def verify(report: Report) -> bool:
    """Does the issued report still hash to what the audit trail recorded at issue?"""
    return report.sha256 is not None and \
        hashlib.sha256(canonical(report)).hexdigest() == report.sha256


def may(actor: User, action: str, report: Report) -> bool:
    return can(actor, action, report)


# ---------------------------------------------------------------------------------------------
# The district bulletin (Art 16, 17)


@dataclass
class Ranked:
    rank: int | None
    code: str
    name: str
    drill: dict[str, str]
    values: dict[str, Any]
    score: float | None


def bulletin(actor: User, period: Period, *, now: datetime) -> dict[str, list[Ranked]]:
    """Departments and towns ranked by the assessment score of Art 17 (see figures)."""
    district = figures.scope_for("district")
    require_scope(actor, district)
    ranked: dict[str, list[Ranked]] = {}
    for by, rows in figures.breakdowns(district, period, ("department", "town"),
                                       now=now).items():
        if by == "department":
            names = {d.id: d for d in reports_session().scalars(select(Department))}
            rows = [r for r in rows if r.group.key in names]
        entries = [Ranked(None, r.group.code, r.group.name, r.group.drill, r.values,
                          figures.assessment_score(r.values)) for r in rows]
        entries.sort(key=lambda e: (e.score is None, -(e.score or 0), e.code))
        for n, entry in enumerate(e for e in entries if e.score is not None):
            entry.rank = n + 1
        ranked[by] = entries
    return ranked
