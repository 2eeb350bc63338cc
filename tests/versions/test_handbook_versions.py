"""Handbook versions in the database: deploy as drafts, review, publish, reject (Art 5, 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditRecord, HandbookVersion, Role, User, VersionStatus
from app.services import handbooks
from app.services.errors import Conflict, Forbidden, ValidationFailed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of bpmn/ and handbooks/ the tests may edit."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "bpmn", root / "bpmn")
    shutil.copytree(ROOT / "handbooks", root / "handbooks")
    return root


@pytest.fixture
def work(tmp_path: Path, tree: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(tree, root)
    return root


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(HandbookVersion)) or 0


def _user(make_user, *roles) -> User:
    return db.session.get(User, make_user(*roles)["id"])


def test_deploy_creates_one_draft_per_handbook_and_nothing_twice(ctx, clock) -> None:
    first = handbooks.deploy(author=None, now=clock(), note="initial")
    keys = {v.handbook_key for v in first.created}
    # 15 scenarios, the weather warning publication and the technical case of feed outages.
    assert len(keys) == 17 and "gas" in keys and "warning_publication" in keys
    assert "feed_outage" in keys
    assert all(v.status == VersionStatus.DRAFT and v.number == 1 for v in first.created)
    assert all(v.diff_summary["first_version"] for v in first.created)
    again = handbooks.deploy(author=None, now=clock())
    assert again.created == [] and len(again.unchanged) == 17
    assert _count() == 17


def test_a_changed_file_creates_exactly_one_new_draft(ctx, clock, work) -> None:
    handbooks.deploy(author=None, now=clock(), root=work)
    path = work / "handbooks" / "scenarios" / "gas.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["measures"] = [*data["measures"], {"id": "extra_patrol", "text": "加密巡查"}] \
        if isinstance(data.get("measures"), list) else data["measures"]
    data["name"] = data["name"] + "（修订）"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    result = handbooks.deploy(author=None, now=clock(), root=work, note="修订燃气手册")
    assert [v.handbook_key for v in result.created] == ["gas"]
    version = result.created[0]
    assert version.number == 2 and version.change_note == "修订燃气手册"
    sections = {c["section"] for c in version.diff_summary["data_changed"]}
    assert "name" in sections
    assert version.diff_summary["files_changed"] == ["handbooks/scenarios/gas.json"]


def test_a_bpmn_change_is_summarised_by_element(ctx, clock, work) -> None:
    handbooks.deploy(author=None, now=clock(), root=work)
    path = work / "bpmn" / "scenario_gas.bpmn"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('name="到场处置"', 'name="到场处置（新）"', 1), encoding="utf-8")
    [version] = handbooks.deploy(author=None, now=clock(), root=work).created
    changed = version.diff_summary["elements_changed"]
    assert any(e["name"] == "到场处置（新）" for e in changed)


def test_bad_files_deploy_nothing(ctx, clock, work) -> None:
    (work / "bpmn" / "scenario_gas.bpmn").write_text("<bpmn:definitions", encoding="utf-8")
    path = work / "handbooks" / "scenarios" / "elevator.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["owner_department"] = "nowhere"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(handbooks.DeployRefused) as err:
        handbooks.deploy(author=None, now=clock(), root=work)
    assert "elevator.json" in str(err.value.message)
    assert _count() == 0


def test_bpmn_that_does_not_parse_is_named(ctx, clock, work) -> None:
    (work / "bpmn" / "scenario_gas.bpmn").write_text("<bpmn:definitions", encoding="utf-8")
    with pytest.raises(handbooks.DeployRefused) as err:
        handbooks.deploy(author=None, now=clock(), root=work)
    assert any("scenario_gas.bpmn" in p for p in err.value.details["problems"])
    assert _count() == 0


def test_review_publish_and_retire(ctx, clock, make_user, work) -> None:
    admin = _user(make_user, (Role.BUSINESS_ADMIN, "scenario.gas"))
    head = _user(make_user, (Role.DEPARTMENT_HEAD, "industry.construction"))
    [v1] = [v for v in handbooks.deploy(author=admin, now=clock(), root=work).created
            if v.handbook_key == "gas"]
    handbooks.submit_for_review(admin, v1.id, note="首版", now=clock())
    handbooks.approve(head, v1.id, comment="同意发布", now=clock())
    assert handbooks.published_version("gas").id == v1.id
    path = work / "handbooks" / "scenarios" / "gas.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["name"] = "燃气（二版）"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    [v2] = handbooks.deploy(author=admin, now=clock(), root=work).created
    handbooks.submit_for_review(admin, v2.id, note="调整", now=clock())
    handbooks.approve(head, v2.id, comment="同意", now=clock())
    db.session.refresh(v1)
    assert v1.status == VersionStatus.RETIRED and v2.status == VersionStatus.PUBLISHED
    assert handbooks.published_version("gas").id == v2.id
    actions = db.session.scalars(select(AuditRecord.action).where(
        AuditRecord.object_id == str(v2.id))).all()
    assert actions == ["handbook.draft", "handbook.submit", "handbook.publish"]


def test_reject_returns_to_draft_with_the_reason(ctx, clock, make_user, work) -> None:
    admin = _user(make_user, (Role.BUSINESS_ADMIN, "scenario.gas"))
    head = _user(make_user, (Role.DEPARTMENT_HEAD, "scenario.gas"))
    [v1] = [v for v in handbooks.deploy(author=admin, now=clock(), root=work).created
            if v.handbook_key == "gas"]
    handbooks.submit_for_review(admin, v1.id, note="", now=clock())
    with pytest.raises(ValidationFailed):
        handbooks.reject(head, v1.id, reason=" ", now=clock())
    handbooks.reject(head, v1.id, reason="阈值依据不足", now=clock())
    assert v1.status == VersionStatus.DRAFT and v1.review_comment == "阈值依据不足"
    assert handbooks.published_version("gas") is None
    with pytest.raises(Conflict):
        handbooks.approve(head, v1.id, comment="ok", now=clock())


def test_approving_your_own_or_outside_your_role_is_refused(ctx, clock, make_user, work) -> None:
    both = _user(make_user, (Role.BUSINESS_ADMIN, "scenario.gas"),
                 (Role.DEPARTMENT_HEAD, "scenario.gas"))
    other_head = _user(make_user, (Role.DEPARTMENT_HEAD, "industry.emergency"))
    admin = _user(make_user, (Role.BUSINESS_ADMIN, "scenario.gas"))
    [v1] = [v for v in handbooks.deploy(author=both, now=clock(), root=work).created
            if v.handbook_key == "gas"]
    handbooks.submit_for_review(both, v1.id, note="", now=clock())
    with pytest.raises(Forbidden, match="不能审核自己起草的版本|cannot review"):
        handbooks.approve(both, v1.id, comment="自己批", now=clock())
    with pytest.raises(Forbidden):
        handbooks.approve(other_head, v1.id, comment="越权", now=clock())
    with pytest.raises(Forbidden):
        handbooks.approve(admin, v1.id, comment="不是部门责任人", now=clock())
    assert v1.status == VersionStatus.IN_REVIEW


def test_version_pages(app, dbconn, clock, as_role) -> None:
    with app.app_context():
        handbooks.deploy(author=None, now=clock(), note="首次部署")
        db.session.commit()
        version_id = handbooks.latest_version("gas").id
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas")
    listing = admin.text("/handbooks/")
    assert 'data-key="gas"' in listing and "燃气" in listing
    page = admin.text("/handbooks/gas")
    assert "v1" in page and "首次部署" in page and "提交审核" in page
    response = admin.post(f"/handbooks/versions/{version_id}/submit", {"comment": "首版"})
    assert response.status_code == 302
    head = as_role(Role.DEPARTMENT_HEAD, node="industry.construction")
    refused = head.post(f"/handbooks/versions/{version_id}/approve", {"comment": ""})
    assert refused.status_code == 422 and "请填写审核意见。" in refused.get_data(as_text=True)
    ok = head.post(f"/handbooks/versions/{version_id}/approve", {"comment": "同意"})
    assert ok.status_code == 302
    assert 'data-status="published"' in head.text("/handbooks/gas")
    bpmn = admin.get(f"/handbooks/versions/{version_id}/files/bpmn/scenario_gas.bpmn")
    assert bpmn.status_code == 200 and b"scenario_gas" in bpmn.data
    responder = as_role(Role.RESPONDER, node="town.02")
    assert responder.post(f"/handbooks/versions/{version_id}/reject",
                          {"comment": "x"}).status_code == 403


def test_demo_handbooks_are_published_through_review_once(ctx, clock) -> None:
    from app.services import demo

    demo.load_demo_accounts(now=clock())
    published = demo.publish_demo_handbooks(now=clock())
    assert len(published) == 17
    for key in published:
        version = handbooks.published_version(key)
        assert version.reviewer_id != version.author_id
    assert demo.publish_demo_handbooks(now=clock()) == []
    assert _count() == 17


def test_bpmn_in_any_xml_encoding_deploys_as_utf8(ctx, clock, work) -> None:
    path = work / "bpmn" / "scenario_gas.bpmn"
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.replace('encoding="UTF-8"', 'encoding="UTF-16"', 1).encode("utf-16"))
    created = handbooks.deploy(author=None, now=clock(), root=work).created
    [gas] = [v for v in created if v.handbook_key == "gas"]
    assert gas.files["bpmn/scenario_gas.bpmn"] == text


def test_unreadable_files_are_named_not_a_traceback(ctx, clock, work) -> None:
    (work / "bpmn" / "scenario_gas.bpmn").write_bytes(
        b'<?xml version="1.0" encoding="x-unknown"?><bpmn:definitions/>')
    (work / "handbooks" / "scenarios" / "water.json").write_bytes('{"名": 1}'.encode("utf-16"))
    with pytest.raises(handbooks.DeployRefused) as err:
        handbooks.deploy(author=None, now=clock(), root=work)
    assert "water.json: the file is not UTF-8 text" in err.value.message
    (work / "handbooks" / "scenarios" / "water.json").unlink()
    shutil.copy(ROOT / "handbooks" / "scenarios" / "water.json",
                work / "handbooks" / "scenarios" / "water.json")
    with pytest.raises(handbooks.DeployRefused) as err:
        handbooks.deploy(author=None, now=clock(), root=work)
    [problem] = err.value.details["problems"]
    assert problem.startswith("bpmn/scenario_gas.bpmn:1: the file is not well-formed XML: "
                              "Unsupported encoding: x-unknown")
    assert _count() == 0


def test_designer_check_reports_odd_text_as_problems(ctx, clock, work) -> None:
    from app.web.designer import version_problems

    [gas] = [v for v in handbooks.deploy(author=None, now=clock(), root=work).created
             if v.handbook_key == "gas"]
    name = "bpmn/scenario_gas.bpmn"
    text = gas.files[name]
    assert version_problems(gas, name, text.replace('encoding="UTF-8"',
                                                    'encoding="UTF-16"', 1)) == []
    broken = version_problems(gas, name, text.replace("</bpmn:definitions>",
                                                      "<!-- \ud800 --></bpmn:definitions>"))
    assert [(p.file, "not well-formed XML" in p.message) for p in broken] == [(name, True)]
