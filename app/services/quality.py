"""Data quality of closed cases (Art 9): rules as data, the scan that flags, the correction."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.i18n import _l
from app.models import (
    Attachment,
    Case,
    CaseEvent,
    DataQualityIssue,
    HandbookVersion,
    Heartbeat,
    MonitoringPoint,
    NodeKind,
    PlatformNode,
    User,
)
from app.services import audit, case_engine
from app.services.cases import handbook_or_none
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.permissions import require, scope_paths
from app.services.scenarios import in_scope
from app.services.steps import ACCEPT, CANCEL, DISPOSE, FEEDBACK, element_steps
from app.timezone import local_zone

# Who sees the quality lists: the supervising roles that follow overdue cases; correcting
# needs `case.correct` on the case itself.
VIEW_ACTION = "overdue.view"
CORRECT_ACTION = "case.correct"
CLOSED_STATUSES = ("closed", "false_alarm")

# Pudong New Area's bounding box (WGS-84).
PUDONG_LAT = (30.85, 31.40)
PUDONG_LON = (121.45, 121.98)

MIN_FEEDBACK_CHARS = 10
PLACEHOLDERS = frozenset({
    "无", "没有", "暂无", "略", "同上", "见上", "不详", "未知", "测试", "已处理", "ok", "okay",
    "test", "na", "n/a", "null", "none", "xx", "xxx", "123", "1234", "abc"})
_PUNCTUATION = re.compile(r"[\s.,;:!?'\"`~\-_/\\|()（）。，、；：！？…·“”‘’]+")

# The steps (by their mark in the BPMN) whose forms the rules read, and which of their text
# fields must be real prose.
FORM_STEPS = (ACCEPT, DISPOSE, CANCEL, FEEDBACK)
PROSE_FIELDS: tuple[tuple[str, str, str], ...] = (
    (FEEDBACK, "measures_taken", "已采取的措施"), (FEEDBACK, "location", "处置位置"),
    (CANCEL, "cancel_note", "销警说明"), (DISPOSE, "situation", "现场情况及处置"))
FILE_FIELDS: tuple[tuple[str, str], ...] = ((CANCEL, "evidence"), (FEEDBACK, "photos"))


def is_placeholder(text: str) -> bool:
    """'无', 'ok', '111', '...', 'ok ok': a value that fills a field without saying anything."""
    tokens = [t for t in _PUNCTUATION.split(text.lower()) if t]
    core = "".join(tokens)
    if not core or len(set(core)) == 1 or all(t in PLACEHOLDERS for t in tokens):
        return True
    # The same placeholder typed again and again: "okokok", "123123".
    return any(len(core) % len(p) == 0 and core == p * (len(core) // len(p))
               for p in PLACEHOLDERS)


def parse_time(value: Any) -> datetime | None:
    """A form's date-time value; a time without zone is Shanghai time."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=local_zone())


@dataclass(frozen=True)
class CaseFacts:
    """What the rules may look at: the case row, its point, attachments and recorded forms."""

    case: Case
    forms: Mapping[str, Mapping[str, Any]]  # step -> the last form submitted
    completed: Mapping[str, datetime]  # step -> when it was last completed
    attachments: int = 0
    point: MonitoringPoint | None = None
    evidence_kinds: tuple[str, ...] = ()  # what the handbook asks as evidence for the cause

    @property
    def went_through_closure(self) -> bool:
        return self.case.status == "closed"

    def value(self, element: str, name: str) -> Any:
        return self.forms.get(element, {}).get(name)

    def text(self, element: str, name: str) -> str:
        value = self.value(element, name)
        return value.strip() if isinstance(value, str) else ""


Check = Callable[[CaseFacts], str | None]


@dataclass(frozen=True)
class Rule:
    code: str
    category: str  # missing / nonstandard / illogical
    description: str  # Chinese, as the operating rules phrase it
    check: Check


def _missing_feedback(f: CaseFacts) -> str | None:
    if f.went_through_closure and FEEDBACK not in f.forms:
        return "已结案, 但没有闭环反馈记录"
    return None


def _missing_evidence(f: CaseFacts) -> str | None:
    if not f.went_through_closure or not f.evidence_kinds or f.attachments:
        return None
    if any(f.text(element, name) for element, name in FILE_FIELDS):
        return None
    return f"手册要求证明材料({', '.join(f.evidence_kinds)}), 但没有附件或证明材料"


def _missing_cancel_cause(f: CaseFacts) -> str | None:
    if f.went_through_closure and not f.text(CANCEL, "cancel_cause"):
        return "已结案, 但没有销警原因"
    return None


def _feedback_too_short(f: CaseFacts) -> str | None:
    text = f.text(FEEDBACK, "measures_taken")
    if text and len(text) < MIN_FEEDBACK_CHARS:
        return f"反馈“已采取的措施”只有 {len(text)} 个字, 少于 {MIN_FEEDBACK_CHARS} 个字"
    return None


def _placeholder_text(f: CaseFacts) -> str | None:
    found = [f"“{label}”为“{f.text(element, name)}”" for element, name, label in PROSE_FIELDS
             if f.text(element, name) and is_placeholder(f.text(element, name))]
    return "填写了占位内容: " + "; ".join(found) if found else None


def _cancel_time(f: CaseFacts) -> datetime | None:
    return parse_time(f.value(CANCEL, "cancelled_at")) or f.completed.get(CANCEL)


def _cancelled_before_accepted(f: CaseFacts) -> str | None:
    cancelled = _cancel_time(f)
    if cancelled is None:
        return None
    accepted = f.case.accepted_at
    if accepted is None:
        return "已销警, 但没有接单记录"
    if cancelled < accepted:
        return f"销警时间 {_local(cancelled)} 早于接单时间 {_local(accepted)}"
    return None


def _feedback_before_opened(f: CaseFacts) -> str | None:
    opened = f.case.opened_at
    found = [f"{label} {_local(moment)}" for name, label in (("arrived_at", "到场时间"),
                                                            ("completed_at", "处置完成时间"),
                                                            ("finished_at", "处置完成时间"))
             if (moment := parse_time(f.value(FEEDBACK, name))) is not None and moment < opened]
    return f"{'、'.join(found)} 早于立案时间 {_local(opened)}" if found else None


def _arrival_after_finish(f: CaseFacts) -> str | None:
    arrived = parse_time(f.value(FEEDBACK, "arrived_at"))
    finished = (parse_time(f.value(FEEDBACK, "completed_at"))
                or parse_time(f.value(FEEDBACK, "finished_at")))
    if arrived is not None and finished is not None and arrived > finished:
        return f"到场时间 {_local(arrived)} 晚于处置完成时间 {_local(finished)}"
    return None


def _closed_before_accepted(f: CaseFacts) -> str | None:
    case = f.case
    if not f.went_through_closure or case.closed_at is None:
        return None
    if case.accepted_at is None:
        return "已结案, 但没有接单记录"
    if case.closed_at < case.accepted_at:
        return f"结案时间 {_local(case.closed_at)} 早于接单时间 {_local(case.accepted_at)}"
    return None


def inside_pudong(lat: float, lon: float) -> bool:
    return PUDONG_LAT[0] <= lat <= PUDONG_LAT[1] and PUDONG_LON[0] <= lon <= PUDONG_LON[1]


def _point_outside_pudong(f: CaseFacts) -> str | None:
    point = f.point
    if point is None or point.lat is None or point.lon is None:
        return None
    if not inside_pudong(point.lat, point.lon):
        return f"监测点 {point.code} 的坐标({point.lat}, {point.lon})不在浦东新区范围内"
    return None


def _local(moment: datetime) -> str:
    return moment.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M")


RULES: tuple[Rule, ...] = (
    Rule("missing_feedback", "missing", "数据要素缺失: 已结案但未记录闭环反馈", _missing_feedback),
    Rule("missing_evidence", "missing", "数据要素缺失: 手册要求证明材料但没有附件或证明材料",
         _missing_evidence),
    Rule("missing_cancel_cause", "missing", "数据要素缺失: 未记录销警原因", _missing_cancel_cause),
    Rule("feedback_too_short", "nonstandard",
         f"内容不规范: 反馈措施少于 {MIN_FEEDBACK_CHARS} 个字", _feedback_too_short),
    Rule("placeholder_text", "nonstandard", "内容不规范: 以“无”“ok”“111”等占位内容填写",
         _placeholder_text),
    Rule("cancelled_before_accepted", "illogical", "数据逻辑不合理: 销警早于接单",
         _cancelled_before_accepted),
    Rule("feedback_before_opened", "illogical", "数据逻辑不合理: 到场或完成时间早于立案时间",
         _feedback_before_opened),
    Rule("arrival_after_finish", "illogical", "数据逻辑不合理: 到场时间晚于处置完成时间",
         _arrival_after_finish),
    Rule("closed_before_accepted", "illogical", "数据逻辑不合理: 结案早于接单",
         _closed_before_accepted),
    Rule("point_outside_pudong", "illogical", "数据逻辑不合理: 监测点坐标不在浦东新区范围内",
         _point_outside_pudong),
)
RULES_BY_CODE: dict[str, Rule] = {rule.code: rule for rule in RULES}
CATEGORY_LABELS: dict[str, Any] = {"missing": _l("Missing elements"),
                                   "nonstandard": _l("Non-standard content"),
                                   "illogical": _l("Illogical data")}


def broken_rules(facts: CaseFacts, rules: Iterable[Rule] = RULES) -> dict[str, str]:
    """Rule code -> message for every rule the case breaks."""
    return {rule.code: message for rule in rules if (message := rule.check(facts)) is not None}


# Reading the facts from the stored history.

def _evidence_kinds(version: HandbookVersion, cause: str) -> tuple[str, ...]:
    handbook = handbook_or_none(version)
    cancellation = (handbook.data.get("cancellation") if handbook else None) or {}
    kinds = list(cancellation.get("evidence") or [])
    for item in cancellation.get("causes") or []:
        if item.get("code") == cause:
            kinds += [k for k in item.get("evidence") or [] if k not in kinds]
    return tuple(kinds)


def gather_facts(cases: Sequence[Case]) -> list[CaseFacts]:
    """The facts of many cases in a handful of queries."""
    ids = [c.id for c in cases]
    if not ids:
        return []
    hashes = set(db.session.scalars(select(CaseEvent.version_hash).where(
        CaseEvent.case_id.in_(ids)).distinct()))
    step_maps = element_steps(hashes, *FORM_STEPS)
    marked = {element_id for found in step_maps.values() for element_id in found}
    events = db.session.scalars(select(CaseEvent).where(
        CaseEvent.case_id.in_(ids),
        or_(CaseEvent.kind == "input",
            and_(CaseEvent.kind == "task", CaseEvent.new_state == "COMPLETED",
                 CaseEvent.element_id.in_(marked))))
        .order_by(CaseEvent.case_id, CaseEvent.seq))
    forms: dict[int, dict[str, dict[str, Any]]] = {i: {} for i in ids}
    completed: dict[int, dict[str, datetime]] = {i: {} for i in ids}
    elements: dict[tuple[int, str], str] = {}  # (case, engine task id) -> step
    for event in events:
        data = event.data or {}
        step = step_maps.get(event.version_hash, {}).get(event.element_id or "")
        if event.kind == "task" and step is not None:
            elements[(event.case_id, str(data.get("task")))] = step
            completed[event.case_id][step] = event.at
            delta = (data.get("delta") or {}).get("updated") or {}
            forms[event.case_id].setdefault(step, {}).update(delta)
        elif data.get("kind") == "complete_task":
            # The input holds the whole submitted form; the delta only what changed.
            element = elements.get((event.case_id, str(data.get("task_id"))))
            if element is not None:
                forms[event.case_id][element] = dict(data.get("data") or {})
    attachments = dict(db.session.execute(
        select(Attachment.case_id, func.count()).where(Attachment.case_id.in_(ids))
        .group_by(Attachment.case_id)).tuples().all())
    point_ids = {c.point_id for c in cases if c.point_id is not None}
    points = {p.id: p for p in db.session.scalars(
        select(MonitoringPoint).where(MonitoringPoint.id.in_(point_ids)))} if point_ids else {}
    versions = {v.id: v for v in db.session.scalars(select(HandbookVersion).where(
        HandbookVersion.id.in_({c.handbook_version_id for c in cases})))}
    found = []
    for case in cases:
        cause = str(forms[case.id].get(CANCEL, {}).get("cancel_cause") or "")
        found.append(CaseFacts(
            case=case, forms=forms[case.id], completed=completed[case.id],
            attachments=int(attachments.get(case.id, 0)),
            point=points.get(case.point_id) if case.point_id else None,
            evidence_kinds=_evidence_kinds(versions[case.handbook_version_id], cause)))
    return found


# The scan.

SCAN_HEARTBEAT = "quality_scan"
SCAN_OVERLAP = timedelta(hours=2)


@dataclass
class ScanResult:
    checked: int = 0
    flagged: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


def scan(now: datetime, *, since: datetime | None = None, batch: int = 200) -> ScanResult:
    """Check closed cases (those closed since `since`, or all) against every rule and record
    one issue per case and broken rule. Running it again flags nothing twice."""
    # Warning publications and technical cases of feed outages are not warnings: their
    # records follow no disposal rules.
    query = select(Case.id).where(Case.status.in_(CLOSED_STATUSES), Case.is_test.is_(False),
                                  Case.scenario.not_in(("warning_publication", "feed_outage")))
    if since is not None:
        query = query.where(Case.closed_at >= since)
    ids = list(db.session.scalars(query.order_by(Case.id)))
    result = ScanResult()
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        cases = list(db.session.scalars(select(Case).where(Case.id.in_(chunk))
                                        .order_by(Case.id)))
        known = set(db.session.execute(select(DataQualityIssue.case_id, DataQualityIssue.rule)
                                       .where(DataQualityIssue.case_id.in_(chunk))).tuples())
        for facts in gather_facts(cases):
            result.checked += 1
            for code, message in broken_rules(facts).items():
                if (facts.case.id, code) not in known and _flag(facts.case, code, message, now):
                    result.flagged += 1
                    result.by_rule[code] = result.by_rule.get(code, 0) + 1
    return result


def _flag(case: Case, rule: str, message: str, now: datetime) -> bool:
    try:
        with db.session.begin_nested():  # another worker may have flagged it a moment ago
            db.session.add(DataQualityIssue(case_id=case.id, rule=rule, message=message,
                                            detected_at=now))
    except IntegrityError:
        return False
    return True


def scan_recent(now: datetime) -> ScanResult:
    """The scheduled scan: cases closed since the previous run (with some overlap)."""
    beat = db.session.get(Heartbeat, SCAN_HEARTBEAT)
    result = scan(now, since=beat.beat_at - SCAN_OVERLAP if beat else None)
    if beat is None:
        beat = Heartbeat(name=SCAN_HEARTBEAT, beat_at=now)
        db.session.add(beat)
    beat.beat_at = now
    beat.detail = f"checked {result.checked}, flagged {result.flagged}"
    db.session.flush()
    return result


# Listing and correcting.

@dataclass(frozen=True)
class IssuePage:
    items: list[tuple[DataQualityIssue, Case]]
    total: int
    page: int
    per_page: int
    counts: dict[str, int]  # rule -> open issues in scope

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def list_issues(actor: User, *, rule: str | None = None, state: str = "open", page: int = 1,
                per_page: int = 50) -> IssuePage:
    """Issues on the cases in `actor`'s scope; `state` is open, resolved or all."""
    require(actor, VIEW_ACTION)
    scoped = and_(Case.is_test.is_(False),
                  in_scope(scope_paths(actor, VIEW_ACTION), Case.scope_path, Case.scenario_path))
    base = select(DataQualityIssue, Case).join(Case, Case.id == DataQualityIssue.case_id).where(
        scoped)
    counts = dict(db.session.execute(
        select(DataQualityIssue.rule, func.count()).join(Case, Case.id == DataQualityIssue.case_id)
        .where(scoped, DataQualityIssue.resolved_at.is_(None))
        .group_by(DataQualityIssue.rule)).tuples().all())
    if rule:
        base = base.where(DataQualityIssue.rule == rule)
    if state == "open":
        base = base.where(DataQualityIssue.resolved_at.is_(None))
    elif state == "resolved":
        base = base.where(DataQualityIssue.resolved_at.is_not(None))
    total = db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = db.session.execute(base.order_by(DataQualityIssue.detected_at.desc(),
                                            DataQualityIssue.id.desc())
                              .offset((page - 1) * per_page).limit(per_page)).tuples().all()
    return IssuePage([(i, c) for i, c in rows], total, page, per_page,
                     {k: int(v) for k, v in counts.items()})


def get_issue(actor: User, issue_id: int) -> tuple[DataQualityIssue, Case]:
    issue = db.session.get(DataQualityIssue, issue_id)
    case = db.session.get(Case, issue.case_id) if issue is not None else None
    if issue is None or case is None:
        raise NotFound(_l("No such data-quality issue."))
    require(actor, VIEW_ACTION, case)
    return issue, case


def correct(actor: User, issue_id: int, *, explanation: str, value: str | None = None,
            now: datetime) -> DataQualityIssue:
    """Record a correction: on the issue, in the case's history and in the audit trail."""
    issue, case = get_issue(actor, issue_id)
    require(actor, CORRECT_ACTION, case)
    if issue.resolved_at is not None:
        raise Conflict(_l("This issue has already been corrected."), code="already_corrected")
    text, corrected = explanation.strip(), (value or "").strip() or None
    problems: dict[str, list[str]] = {}
    if not text:
        problems["explanation"] = [str(_l("Required."))]
    elif is_placeholder(text):
        problems["explanation"] = [str(_l("Say what was wrong and what is right."))]
    elif len(text) > 2000:
        problems["explanation"] = [str(_l("At most 2000 characters."))]
    if corrected is not None and len(corrected) > 500:
        problems["value"] = [str(_l("At most 500 characters."))]
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."), details=problems)
    correction = {"value": corrected, "explanation": text}
    issue.resolved_at, issue.resolved_by_id = now, actor.id
    issue.correction = correction
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    case_engine.add_event(case, kind="correction", at=now, actor=actor,
                          version_hash=version.content_hash if version else "",
                          data={"issue": issue.id, "rule": issue.rule, **correction})
    audit.record(actor=actor, action="quality.correct", object_type="data_quality_issue",
                 object_id=issue.id,
                 before={"case": case.case_no, "rule": issue.rule, "message": issue.message,
                         "resolved": False},
                 after={"case": case.case_no, "rule": issue.rule, "resolved": True, **correction},
                 at=now)
    db.session.flush()
    return issue


# Unknown points: registering the missing master data.

POINT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")


def register_point(actor: User, *, scenario: str, code: str, name: str, node_id: int,
                   lat: float, lon: float, object_type: str = "", now: datetime
                   ) -> MonitoringPoint:
    """Register a point that reached intake unknown, with its town and coordinates; audited."""
    scenario_node = db.session.scalar(select(PlatformNode).where(
        PlatformNode.code == f"scenario.{scenario}"))
    if scenario_node is None:
        raise ValidationFailed(_l("Please correct the marked fields."),
                               details={"scenario": [str(_l("Unknown scenario."))]})
    require(actor, CORRECT_ACTION, scenario_node)
    problems: dict[str, list[str]] = {}
    if not POINT_CODE.match(code):
        problems["code"] = [str(_l("Letters, digits, _ . - only."))]
    elif db.session.scalar(select(MonitoringPoint.id).where(MonitoringPoint.code == code)):
        problems["code"] = [str(_l("This point is already registered."))]
    if not name.strip():
        problems["name"] = [str(_l("Required."))]
    node = db.session.get(PlatformNode, node_id)
    if node is None or node.kind not in (NodeKind.TOWN, NodeKind.VILLAGE, NodeKind.LINGANG):
        problems["node"] = [str(_l("Choose the street, town or village the point lies in."))]
    if not PUDONG_LAT[0] <= lat <= PUDONG_LAT[1]:
        problems["lat"] = [str(_l("Latitude must lie within Pudong (%(lo)s-%(hi)s).",
                                  lo=PUDONG_LAT[0], hi=PUDONG_LAT[1]))]
    if not PUDONG_LON[0] <= lon <= PUDONG_LON[1]:
        problems["lon"] = [str(_l("Longitude must lie within Pudong (%(lo)s-%(hi)s).",
                                  lo=PUDONG_LON[0], hi=PUDONG_LON[1]))]
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."), details=problems)
    assert node is not None
    point = MonitoringPoint(code=code, name=name.strip()[:200], scenario=scenario,
                            object_type=object_type.strip()[:60], node_id=node.id,
                            owner_department_id=scenario_node.department_id, lat=lat, lon=lon)
    db.session.add(point)
    db.session.flush()
    moved = move_to_point(point, node, scenario_node)
    audit.record(actor=actor, action="point.register", object_type="monitoring_point",
                 object_id=point.id,
                 after={"code": code, "name": point.name, "scenario": scenario,
                        "node": node.code, "lat": lat, "lon": lon, **moved}, at=now)
    return point


def move_to_point(point: MonitoringPoint, town: PlatformNode,
                   scenario_node: PlatformNode) -> dict[str, Any]:
    """The alerts of a point that arrived unknown now name it, and its open cases (on the
    scenario's own line until now) move to its town, with their inbox tasks."""
    from sqlalchemy import update

    from app.models import Alert, CaseTask

    alerts = db.session.execute(update(Alert).where(
        Alert.point_code == point.code, Alert.scenario == point.scenario,
        Alert.point_id.is_(None)).values(point_id=point.id)
        .execution_options(synchronize_session=False))
    cases = list(db.session.scalars(select(Case).where(
        Case.point_code == point.code, Case.scenario == point.scenario,
        Case.status == "open", Case.point_id.is_(None))))
    for case in cases:
        case.point_id, case.node_id, case.scope_path = point.id, town.id, town.path
        case.scenario_path = scenario_node.path
    if cases:
        db.session.execute(update(CaseTask).where(
            CaseTask.case_id.in_([c.id for c in cases])).values(scope_path=town.path)
            .execution_options(synchronize_session=False))
    return {"alerts_moved": int(getattr(alerts, "rowcount", 0) or 0),
            "cases_moved": [c.case_no for c in cases]}
