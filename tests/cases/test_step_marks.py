"""Steps the application relies on are found by their mark in the BPMN, never by element id:
a version without a required step is refused naming it, and a renamed step keeps acceptance
times, deadlines, the overdue list and the data-quality rules working."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseTask, HandbookVersion, Role, User, VersionStatus
from app.services import handbooks, overdue, problem_text, quality

B = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DI = "http://www.omg.org/spec/BPMN/20100524/DI"
YELLOW = {"Activity_assessment": {"verdict": "confirmed", "major_risk": False,
                                  "level": "yellow"}}


def _copy_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(handbooks.ROOT / "bpmn", root / "bpmn")
    shutil.copytree(handbooks.ROOT / "handbooks", root / "handbooks")
    return root


def delete_elements(path: Path, ids: set[str], redirect: dict[str, str]) -> None:
    """Delete elements as a designer does in the modeller: the shapes, their drawings, lane
    references and the flows that touched them; `redirect` flow id -> new target."""
    tree = etree.parse(str(path))
    root = tree.getroot()
    for flow in root.iter(f"{{{B}}}sequenceFlow"):
        if flow.get("id") in redirect:
            flow.set("targetRef", redirect[flow.get("id")])
        elif flow.get("sourceRef") in ids or flow.get("targetRef") in ids:
            ids.add(flow.get("id"))
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        gone = (element.get("id") in ids or element.get("bpmnElement") in ids
                or (element.tag in (f"{{{B}}}flowNodeRef", f"{{{B}}}incoming",
                                    f"{{{B}}}outgoing") and (element.text or "") in ids))
        if gone and element.getparent() is not None:
            element.getparent().remove(element)
    tree.write(str(path), xml_declaration=True, encoding="UTF-8")


@pytest.fixture
def without_dispose(tmp_path: Path) -> Path:
    """The gas handbook with 到场处置 deleted and the flow reconnected past it."""
    root = _copy_root(tmp_path)
    delete_elements(root / "bpmn" / "scenario_gas.bpmn",
                    {"Activity_dispose", "Event_on_site_overdue", "Activity_remind_on_site",
                     "Event_on_site_reminded"},
                    {"Flow_evacuation_done_to_dispose": "Gateway_escalate"})
    return root


def test_deleting_on_site_disposal_from_the_gas_handbook_is_refused(app, published,
                                                                    without_dispose):
    with app.app_context():
        with pytest.raises(handbooks.DeployRefused) as refused:
            handbooks.deploy(author=None, now=datetime.now(UTC), root=without_dispose)
        problems = refused.value.details["problems"]
        assert len(problems) == 1 and problems[0].startswith("gas: bpmn/scenario_gas.bpmn")
        assert "marked as 'dispose'" in problems[0]
        assert db.session.scalar(select(HandbookVersion).where(
            HandbookVersion.status == VersionStatus.DRAFT)) is None


def test_a_draft_without_a_required_step_gets_a_named_translated_problem(app, published,
                                                                         without_dispose):
    name = "bpmn/scenario_gas.bpmn"
    with app.app_context():
        version = handbooks.published_version("gas")
        files = {**version.files, name: (without_dispose / name).read_text("utf-8")}
        problems = handbooks.check_draft(version, files)
        assert [(p.code, p.params["step"], p.file) for p in problems] == [
            ("step_missing", "dispose", name)]
        with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
            text = problem_text.text(problems[0])
        assert "到场处置" in text and "step = dispose" in text


def test_deleting_a_step_badly_still_names_the_missing_step(app, published, tmp_path):
    """Left with dangling flows, the engine refuses the file; the missing step is named too."""
    root = _copy_root(tmp_path)
    path = root / "bpmn" / "scenario_gas.bpmn"
    text = path.read_text("utf-8")
    start = text.index('<bpmn:userTask id="Activity_dispose"')
    end = text.index("</bpmn:userTask>", start) + len("</bpmn:userTask>")
    path.write_text(text[:start] + text[end:], "utf-8")
    with app.app_context():
        version = handbooks.published_version("gas")
        files = {**version.files, "bpmn/scenario_gas.bpmn": path.read_text("utf-8")}
        codes = [p.code for p in handbooks.check_draft(version, files)]
    assert "step_missing" in codes and codes[0] != "step_missing"


def test_removing_the_accept_mark_is_refused(app, published, tmp_path):
    root = _copy_root(tmp_path)
    path = root / "bpmn" / "shared" / "common_accept.bpmn"
    path.write_text(path.read_text("utf-8").replace(
        '<camunda:property name="step" value="accept" />', ""), "utf-8")
    with app.app_context(), pytest.raises(handbooks.DeployRefused) as refused:
        handbooks.deploy(author=None, now=datetime.now(UTC), root=root)
    problems = refused.value.details["problems"]
    assert len(problems) == 15  # every scenario calls the shared accept process
    assert all("marked as 'accept'" in p for p in problems)


@pytest.fixture
def renamed_accept(app, published, tmp_path, clock) -> None:
    """Every scenario republished with Activity_accept renamed in common_accept.bpmn."""
    root = _copy_root(tmp_path)
    path = root / "bpmn" / "shared" / "common_accept.bpmn"
    text = path.read_text("utf-8")
    path.write_text(text.replace('"Activity_accept"', '"Activity_take_on"')
                    .replace(">Activity_accept<", ">Activity_take_on<"), "utf-8")
    with app.app_context():
        writer = db.session.scalar(select(User).where(User.username == "hb.writer"))
        reviewer = db.session.scalar(select(User).where(User.username == "hb.reviewer"))
        created = handbooks.deploy(author=writer, now=clock(), root=root).created
        assert len(created) == 15
        for version in created:
            handbooks.submit_for_review(writer, version.id, note="", now=clock())
            handbooks.approve(reviewer, version.id, comment="同意", now=clock())
        db.session.commit()


def test_a_renamed_accept_step_keeps_times_deadlines_overdue_and_quality(
        app, renamed_accept, point, send, people, drive, clock, make_user):
    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    assert drive(case_no, people, stop_at="Activity_take_on", answers=YELLOW) == [
        "Activity_assessment"]
    office = make_user((Role.DISTRICT_OFFICE, "district"))["id"]
    with app.app_context():
        task = db.session.scalar(select(CaseTask).join(Case).where(
            Case.case_no == case_no, CaseTask.status == "ready"))
        assert task.element_id == "Activity_take_on"
        assert task.due_at == datetime(2026, 7, 26, 2, 31, tzinfo=UTC)  # the accept limit
        late = datetime(2026, 7, 26, 4, 0, tzinfo=UTC)
        report = overdue.overdue_cases(db.session.get(User, office), late)
        assert [(c.case_no, c.reasons) for c in report.cases] == [(case_no, ("not_accepted",))]
    done = drive(case_no, people, stop_at="Activity_cancel_warning")
    assert done[0] == "Activity_take_on"
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        assert case.accepted_at is not None
        (facts,) = quality.gather_facts([case])
        assert facts.forms["accept"]["accepted"] is True
        assert "accept" in facts.completed and "dispose" in facts.completed


def _ready(app: Any, case_no: str) -> list[tuple[str, str]]:
    with app.app_context():
        return [(t.process_id, t.element_id) for t in db.session.scalars(
            select(CaseTask).join(Case).where(Case.case_no == case_no,
                                              CaseTask.status == "ready"))]


def test_a_draft_removing_a_step_running_cases_wait_in_is_refused_unless_planned(
        app, published, point, send, people, drive, without_dispose):
    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    drive(case_no, people, stop_at="Activity_dispose", answers=YELLOW)
    assert ("scenario_gas", "Activity_dispose") in _ready(app, case_no)
    name = "bpmn/scenario_gas.bpmn"
    with app.app_context():
        version = handbooks.published_version("gas")
        files = {**version.files, name: (without_dispose / name).read_text("utf-8")}
        (waiting,) = handbooks.removed_waiting_steps("gas", files)
        assert (waiting.element_id, waiting.cases, waiting.version_number) == (
            "Activity_dispose", 1, 1)
        codes = {p.code: p for p in handbooks.check_draft(version, files)}
        assert set(codes) == {"step_missing", "waiting_step_removed"}
        assert codes["waiting_step_removed"].file == name
        planned = handbooks.check_draft(
            version, files, migration_plan={"Activity_dispose": "Gateway_escalate"})
        assert [p.code for p in planned] == ["step_missing"]
        assert handbooks.removed_waiting_steps("gas", version.files) == []
        assert handbooks.removed_waiting_steps(version, files) == [waiting]
        elevator = handbooks.published_version("elevator")
        assert handbooks.removed_waiting_steps(elevator, files) == []


def test_deploying_a_rename_while_cases_wait_in_the_step_is_refused(
        app, published, point, send, people, drive, tmp_path):
    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    drive(case_no, people, stop_at="Activity_accept", answers=YELLOW)
    root = _copy_root(tmp_path)
    path = root / "bpmn" / "shared" / "common_accept.bpmn"
    path.write_text(path.read_text("utf-8").replace('"Activity_accept"', '"Activity_take_on"')
                    .replace(">Activity_accept<", ">Activity_take_on<"), "utf-8")
    with app.app_context(), pytest.raises(handbooks.DeployRefused) as refused:
        handbooks.deploy(author=None, now=datetime.now(UTC), root=root)
    (problem,) = refused.value.details["problems"]
    assert problem.startswith("gas: 1 running case(s) of version 1 wait in step 接单受理")
