"""Data-quality rules on closed cases (Art 9): each rule, the scan, and the audited correction."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.jobs import scan_quality
from app.models import (
    Attachment,
    AuditRecord,
    Case,
    CaseEvent,
    DataQualityIssue,
    Heartbeat,
    MonitoringPoint,
    Role,
)
from app.services import case_engine, org, quality
from app.services.handbooks import published_version

_serial = count(1)


@pytest.fixture
def closed_case(published, point, send, people, drive):
    """Run a gas alarm through the real lifecycle to a closed case, with given answers."""

    def run(answers: dict[str, dict[str, Any]] | None = None, code: str = "GAS-MH-0001",
            register: bool = True) -> str:
        if register:
            point(code, "gas")
        case_no = send("gas", "ch4_lel", 30.0, code)["case_no"]
        merged = {"Activity_assessment": {"verdict": "confirmed", "major_risk": False,
                                          "level": "yellow"}, **(answers or {})}
        drive(case_no, people, answers=merged)
        return case_no

    return run


def _local(text: str) -> str:
    return f"2026-07-26T{text}:00+08:00"


# Afternoon times: after every test case has been opened and accepted.
GOOD_CANCEL = {"cancel_cause": "hazard_removed", "evidence": "现场照片-001.jpg",
               "cancel_note": None, "cancelled_at": _local("18:40")}
GOOD_FEEDBACK = {"cause_category": "hazard_removed", "arrived_at": _local("18:20"),
                 "completed_at": _local("18:35"), "location": "陆家嘴环路 1000 号东侧窨井",
                 "people_on_site": 3, "measures_taken": "开井通风, 关闭上游阀门后复测浓度恢复正常",
                 "casualties": 0, "remaining_risk": "none", "photos": "现场照片-002.jpg"}


def _bare_case(app, clock, forms: dict[str, dict[str, Any]], *, accepted: int | None = 2,
               closed: int = 60, attachments: int = 0) -> str:
    """A closed case written straight into the tables: the row and its recorded forms (for
    facts the handbook forms do not let a responder produce). Offsets are minutes."""
    with app.app_context():
        version = published_version("gas")
        town, line = org.node_by_code("town.02"), org.node_by_code("scenario.gas")
        opened, serial = clock(), next(_serial)
        case = Case(case_no=f"RQ-T-{serial:04d}", scenario="gas", item_code="GAS-CH4-MANHOLE",
                    item_name="燃气管线相邻窨井甲烷浓度超限", handbook_version_id=version.id,
                    process_id=version.process_id, node=town, scope_path=town.path,
                    scenario_path=line.path, owner_department_id=line.department_id,
                    point_code="GAS-X", dedup_key=f"bare|{serial}", status="closed",
                    outcome="closed", level="yellow", highest_level="yellow", first_value=30,
                    last_value=30, first_seen=opened, last_seen=opened, opened_at=opened,
                    accepted_at=opened + timedelta(minutes=accepted) if accepted else None,
                    closed_at=opened + timedelta(minutes=closed),
                    due_at=opened + timedelta(hours=24), state={})
        db.session.add(case)
        db.session.flush()
        for i, (element, form) in enumerate(forms.items()):
            at, task = opened + timedelta(minutes=10 + i), f"task-{i}"
            case_engine.add_event(case, kind="task", at=at, version_hash=version.content_hash,
                                  element_id=element, old_state="READY", new_state="COMPLETED",
                                  data={"task": task, "type": "UserTask",
                                        "delta": {"updated": form, "deleted": []}})
            case_engine.add_event(case, kind="input", at=at, version_hash=version.content_hash,
                                  data={"kind": "complete_task", "task_id": task, "data": form,
                                        "at": at.isoformat(), "actor": "rs"})
        for n in range(attachments):
            db.session.add(Attachment(case_id=case.id, uploaded_by_id=_anyone(), size=1,
                                      filename=f"p{n}.jpg", content_type="image/jpeg",
                                      sha256="0" * 64, content=b"x", created_at=opened))
        db.session.commit()
        return case.case_no


def _anyone() -> int:
    from app.models import User

    return db.session.scalar(select(User.id).order_by(User.id).limit(1))


def _scan(app, clock) -> quality.ScanResult:
    with app.app_context():
        result = quality.scan(clock())
        db.session.commit()
        return result


def _flagged(app, case_no: str) -> dict[str, str]:
    with app.app_context():
        return dict(db.session.execute(
            select(DataQualityIssue.rule, DataQualityIssue.message).join(Case).where(
                Case.case_no == case_no)).tuples().all())


def test_the_rules_are_data():
    codes = [r.code for r in quality.RULES]
    assert len(codes) == len(set(codes)) == 10
    assert {r.category for r in quality.RULES} == set(quality.CATEGORY_LABELS)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in r.description) for r in quality.RULES)


@pytest.mark.parametrize(("text", "placeholder"), [
    ("无", True), ("ok", True), ("OK.", True), ("111", True), ("...", True), (" - ", True),
    ("同上", True), ("aaaa", True), ("ok ok", True), ("123123", True), ("已关阀", False),
    ("现场已按手册处置完毕", False)])
def test_placeholder_text_is_recognised(text, placeholder):
    assert quality.is_placeholder(text) is placeholder


LIFECYCLE_CASES: list[tuple[str | None, dict[str, dict[str, Any]], str]] = [
    (None, {}, ""),
    ("feedback_too_short", {"Activity_feedback": {**GOOD_FEEDBACK, "measures_taken": "已关阀"}},
     "只有 3 个字"),
    ("placeholder_text", {"Activity_feedback": {**GOOD_FEEDBACK, "location": "无"}},
     "“处置位置”为“无”"),
    ("placeholder_text", {"Activity_feedback": {**GOOD_FEEDBACK,
                                                "measures_taken": "ok ok ok ok ok"}}, "ok"),
    ("cancelled_before_accepted", {"Activity_cancel_warning": {
        **GOOD_CANCEL, "cancelled_at": _local("09:00")}}, "早于接单时间"),
    ("feedback_before_opened", {"Activity_feedback": {
        **GOOD_FEEDBACK, "arrived_at": "2026-07-25T09:00:00+08:00"}}, "2026-07-25 09:00"),
    ("arrival_after_finish", {"Activity_feedback": {
        **GOOD_FEEDBACK, "arrived_at": _local("18:50"), "completed_at": _local("18:30")}},
     "晚于处置完成时间"),
]


def test_each_rule_flags_the_case_from_the_lifecycle_that_breaks_it(app, clock, closed_case):
    """One case per broken rule, each run through the real lifecycle; the good case and the
    rules a case does not break stay quiet."""
    built = []
    for n, (rule, answers, words) in enumerate(LIFECYCLE_CASES):
        case_no = closed_case({"Activity_cancel_warning": GOOD_CANCEL,
                               "Activity_feedback": GOOD_FEEDBACK, **answers},
                              code=f"GAS-MH-{n:04d}")
        assert _flagged(app, case_no) == {}
        built.append((case_no, rule, words))
    with app.app_context():
        db.session.add(MonitoringPoint(code="GAS-BJ-1", name="北京的测点", scenario="gas",
                                       node=org.node_by_code("town.02"), lat=39.9, lon=116.4))
        db.session.commit()
    outside = closed_case({"Activity_cancel_warning": GOOD_CANCEL,
                           "Activity_feedback": GOOD_FEEDBACK}, code="GAS-BJ-1", register=False)
    built.append((outside, "point_outside_pudong", "GAS-BJ-1 的坐标(39.9, 116.4)"))
    assert _scan(app, clock).checked == len(built)
    for case_no, rule, words in built:
        flagged = _flagged(app, case_no)
        assert list(flagged) == ([rule] if rule else []), (rule, flagged)
        if rule:
            assert words in flagged[rule], flagged


GOOD_FORMS = {"Activity_accept": {"accepted": True},
              "Activity_cancel_warning": GOOD_CANCEL, "Activity_feedback": GOOD_FEEDBACK}
BUILT_CASES: list[tuple[str | None, dict[str, dict[str, Any]], dict[str, int]]] = [
    (None, GOOD_FORMS, {}),
    ("missing_feedback", {k: v for k, v in GOOD_FORMS.items() if k != "Activity_feedback"}, {}),
    ("missing_cancel_cause", {**GOOD_FORMS, "Activity_cancel_warning": {
        **GOOD_CANCEL, "cancel_cause": None}}, {}),
    ("missing_evidence", {**GOOD_FORMS,
                          "Activity_cancel_warning": {**GOOD_CANCEL, "evidence": ""},
                          "Activity_feedback": {**GOOD_FEEDBACK, "photos": " "}}, {}),
    # The same gap filled by an uploaded attachment is no gap.
    (None, {**GOOD_FORMS, "Activity_cancel_warning": {**GOOD_CANCEL, "evidence": ""},
            "Activity_feedback": {**GOOD_FEEDBACK, "photos": ""}}, {"attachments": 1}),
    ("closed_before_accepted", {**GOOD_FORMS, "Activity_cancel_warning": {
        **GOOD_CANCEL, "cancelled_at": _local("19:15")}}, {"accepted": 70}),
]


def test_each_rule_flags_the_case_built_from_a_history_that_breaks_it(app, clock, published):
    """Facts the handbook forms do not let a responder produce (a required field left out,
    a closure without acceptance) come straight from stored history rows."""
    built = [(_bare_case(app, clock, forms, **kw), rule) for rule, forms, kw in BUILT_CASES]
    _scan(app, clock)
    for case_no, rule in built:
        assert list(_flagged(app, case_no)) == ([rule] if rule else []), (rule, case_no)


def test_the_last_submission_of_a_returned_form_counts(app, clock, published):
    """Verification sent the feedback back once: only the resubmitted form is judged."""
    first = {**GOOD_FEEDBACK, "measures_taken": "无"}
    case_no = _bare_case(app, clock, {**GOOD_FORMS, "Activity_feedback": first})
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        version = published_version("gas")
        at = clock() + timedelta(minutes=30)
        case_engine.add_event(case, kind="task", at=at, version_hash=version.content_hash,
                              element_id="Activity_feedback", new_state="COMPLETED",
                              data={"task": "again", "delta": {"updated": {
                                  "measures_taken": GOOD_FEEDBACK["measures_taken"]}}})
        case_engine.add_event(case, kind="input", at=at, version_hash=version.content_hash,
                              data={"kind": "complete_task", "task_id": "again",
                                    "data": GOOD_FEEDBACK})
        db.session.commit()
    _scan(app, clock)
    assert _flagged(app, case_no) == {}


def test_scanning_twice_flags_nothing_twice(app, clock, closed_case):
    closed_case({"Activity_feedback": {**GOOD_FEEDBACK, "measures_taken": "无"}})
    first = _scan(app, clock)
    assert first.flagged == 2 and first.by_rule == {"feedback_too_short": 1,
                                                    "placeholder_text": 1}
    clock.advance(hours=1)
    again = _scan(app, clock)
    assert again.checked == 1 and again.flagged == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DataQualityIssue)) == 2


def test_the_hourly_job_scans_what_closed_since_its_last_run(app, clock, closed_case):
    closed_case({"Activity_feedback": {**GOOD_FEEDBACK, "location": "111"}})
    assert scan_quality(app) == 1
    with app.app_context():
        beat = db.session.get(Heartbeat, quality.SCAN_HEARTBEAT)
        assert beat.beat_at == clock() and beat.detail == "checked 1, flagged 1"
    later = closed_case({"Activity_feedback": {**GOOD_FEEDBACK, "location": "ok"}},
                        code="GAS-MH-0002")
    clock.advance(hours=1)
    assert scan_quality(app) == 1
    assert list(_flagged(app, later)) == ["placeholder_text"]
    for expected in ("checked 2, flagged 0", "checked 0, flagged 0"):
        clock.advance(hours=3)
        assert scan_quality(app) == 0
        with app.app_context():
            assert db.session.get(Heartbeat, quality.SCAN_HEARTBEAT).detail == expected


def _issue(app, clock, closed_case) -> tuple[int, str]:
    case_no = closed_case({"Activity_feedback": {**GOOD_FEEDBACK, "location": "无"}})
    _scan(app, clock)
    with app.app_context():
        issue_id = db.session.scalar(select(DataQualityIssue.id))
    return issue_id, case_no


def _audit(app, action: str) -> list[AuditRecord]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditRecord).where(AuditRecord.action == action)))
        db.session.expunge_all()
        return rows


def test_a_correction_is_stored_in_the_history_and_the_audit_trail(app, clock, closed_case,
                                                                    as_role):
    issue_id, case_no = _issue(app, clock, closed_case)
    clock.advance(hours=2)
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas")
    page = admin.text(f"/operations/quality/{issue_id}")
    assert "“处置位置”为“无”" in page and 'name="explanation"' in page
    response = admin.post(f"/operations/quality/{issue_id}", data={
        "value": "陆家嘴环路 1000 号东侧窨井", "explanation": "与处置人员电话核实后补正处置位置"})
    assert response.status_code == 302
    with app.app_context():
        issue = db.session.get(DataQualityIssue, issue_id)
        assert issue.resolved_at == clock() and issue.resolved_by_id == admin.account["id"]
        assert issue.correction == {"value": "陆家嘴环路 1000 号东侧窨井",
                                    "explanation": "与处置人员电话核实后补正处置位置"}
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        events = list(db.session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id).order_by(CaseEvent.seq)))
        assert events[-1].kind == "correction" and events[-1].actor_id == admin.account["id"]
        assert events[-1].data["rule"] == "placeholder_text"
        assert events[-1].data["value"] == "陆家嘴环路 1000 号东侧窨井"
        assert case_engine.chain_intact(events) is None
    [record] = _audit(app, "quality.correct")
    assert record.object_id == str(issue_id) and record.before["resolved"] is False
    assert record.after["explanation"] == "与处置人员电话核实后补正处置位置"
    done = admin.text(f"/operations/quality/{issue_id}")
    assert "与处置人员电话核实后补正处置位置" in done and 'name="explanation"' not in done
    assert admin.post(f"/operations/quality/{issue_id}", data={
        "explanation": "再次补正说明文字"}).status_code == 409


BAD_CORRECTIONS = [
    ({"value": "x"}, "explanation", "Required."),
    ({"explanation": "   "}, "explanation", "Required."),
    ({"explanation": "无"}, "explanation", "Say what was wrong"),
    ({"explanation": "x" * 2001}, "explanation", "At most 2000 characters."),
    ({"explanation": "已核实", "value": "v" * 501}, "value", "At most 500 characters."),
]


def test_a_bad_correction_shows_the_field_and_writes_nothing(app, clock, closed_case, as_role):
    issue_id, _case_no = _issue(app, clock, closed_case)
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas", locale="en")
    for form, field, message in BAD_CORRECTIONS:
        response = admin.post(f"/operations/quality/{issue_id}", data=form)
        assert response.status_code == 422, form
        page = response.get_data(as_text=True)
        assert message in page.split(f'id="{field}-error"')[1].split("</p>")[0], form
    with app.app_context():
        assert db.session.get(DataQualityIssue, issue_id).resolved_at is None
        assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.kind == "correction")) == 0
    assert _audit(app, "quality.correct") == []


def test_scope_other_departments_see_nothing_auditors_cannot_change(app, clock, closed_case,
                                                                    as_role):
    issue_id, case_no = _issue(app, clock, closed_case)
    other = as_role(Role.BUSINESS_ADMIN, node="industry.emergency")
    assert case_no not in other.text("/operations/quality")
    assert other.get(f"/operations/quality/{issue_id}").status_code == 403
    assert other.post(f"/operations/quality/{issue_id}",
                      data={"explanation": "越权补正的说明"}).status_code == 403
    auditor = as_role(Role.AUDITOR, node="district")
    listing = auditor.text("/operations/quality")
    assert case_no in listing and 'data-rule="placeholder_text"' in listing
    detail = auditor.text(f"/operations/quality/{issue_id}")
    assert "“处置位置”为“无”" in detail and 'name="explanation"' not in detail
    assert auditor.post(f"/operations/quality/{issue_id}",
                        data={"explanation": "审计员不能补正数据"}).status_code == 403
    with app.app_context():
        assert db.session.get(DataQualityIssue, issue_id).resolved_at is None
    assert _audit(app, "quality.correct") == []
    responder = as_role(Role.RESPONDER, node="town.02")
    assert responder.get("/operations/quality").status_code == 403


def test_the_list_counts_per_rule_and_filters(app, clock, closed_case, as_role):
    closed_case({"Activity_feedback": {**GOOD_FEEDBACK, "measures_taken": "无"}})
    _scan(app, clock)
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas")
    page = admin.text("/operations/quality")
    counts = page.split('class="list rule-counts"')[1].split("</table>")[0]
    row = counts.split('data-rule="feedback_too_short"')[1].split("</tr>")[0]
    assert '<td class="num">1</td>' in row
    only = admin.text("/operations/quality?rule=placeholder_text")
    issues = only.split('class="list responsive issues"')[1]
    assert "占位内容" in issues and "只有 1 个字" not in issues
    resolved = admin.text("/operations/quality?state=resolved")
    assert 'href="/operations/quality/' not in resolved.split('responsive issues"')[1]
