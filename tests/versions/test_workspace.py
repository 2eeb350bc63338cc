"""The designer's workspace on the server: import a BPMN file from other modellers (bad input
refused with a clear message, nothing half saved), save drafts with optimistic concurrency
(a stale save is a 409 naming who and when), check a new file name, compare versions, and the
review flow (heads notified in the app and on the webhook, the review page)."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import HandbookVersion, Notification, OutboundMessage, Role, User, VersionStatus
from app.services import handbooks
from app.services.errors import ValidationFailed
from app.services.handbook_data_diff import data_changes
from app.services.handbook_drafts import read_upload

GAS = "bpmn/scenario_gas.bpmn"
GAS_DATA = "handbooks/scenarios/gas.json"
_BUNDLES: list[Any] = []

SMALL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" {extra_ns}
  id="Defs_1" targetNamespace="http://example.com">
  <bpmn:process id="Process_imported" isExecutable="true">
    <bpmn:startEvent id="Start_1" name="开始"/>{extra}
  </bpmn:process>{more}
  <bpmndi:BPMNDiagram id="Diagram_1">
    <bpmndi:BPMNPlane id="Plane_1" bpmnElement="Process_imported">
      <bpmndi:BPMNShape id="Start_1_di" bpmnElement="Start_1">
        <dc:Bounds x="100" y="100" width="36" height="36"/>
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def small(extra_ns: str = "", extra: str = "", more: str = "") -> str:
    return SMALL.format(extra_ns=extra_ns, extra=extra, more=more)


@pytest.fixture
def gas(app, dbconn, clock, make_user, monkeypatch) -> dict[str, Any]:
    """Gas v1 published; a business administrator and two heads of its line."""
    if not _BUNDLES:
        _BUNDLES.extend(b for b in handbooks.collect_bundles() if b.key == "gas")
    monkeypatch.setattr(handbooks, "collect_bundles", lambda root=None: list(_BUNDLES))
    admin = make_user((Role.BUSINESS_ADMIN, "scenario.gas"), username="hb.gas")
    other = make_user((Role.BUSINESS_ADMIN, "district"), username="hb.district")
    head = make_user((Role.DEPARTMENT_HEAD, "industry.construction"), username="head.jjw")
    far_head = make_user((Role.DEPARTMENT_HEAD, "industry.emergency"), username="head.yj")
    with app.app_context():
        author = db.session.get(User, admin["id"])
        [v1] = handbooks.deploy(author=author, now=clock()).created
        handbooks.submit_for_review(author, v1.id, note="首版", now=clock())
        handbooks.approve(db.session.get(User, head["id"]), v1.id, comment="同意", now=clock())
        db.session.commit()
        files = dict(v1.files)
        return {"v1": v1.id, "files": files, "admin": admin, "other": other, "head": head,
                "far_head": far_head}


def _client(app, account: dict[str, Any]) -> Any:
    from helpers import Browser

    browser = Browser(app.test_client())
    assert browser.login(account["username"], account["password"]).status_code == 302
    browser.token = browser.csrf("/")  # type: ignore[attr-defined]
    return browser


def _save(browser: Any, *, source: int, draft: int | None = None, revision: int | None = None,
          files: dict[str, str], note: str = "") -> Any:
    return browser.client.post("/designer/handbooks/gas/draft",
                               headers={"X-CSRFToken": browser.token},
                               json={"source_version_id": source, "draft_id": draft,
                                     "revision": revision, "files": files, "note": note})


def _import(browser: Any, name: str, content: bytes) -> Any:
    from io import BytesIO

    if len(content) > 100_000:  # pasted: the test client spools a large multipart body
        return browser.client.post("/designer/import", headers={"X-CSRFToken": browser.token},
                                   json={"name": name, "xml": content.decode()})
    return browser.client.post("/designer/import", headers={"X-CSRFToken": browser.token,
                                                            "Accept": "application/json"},
                               data={"name": name, "file": (BytesIO(content), "upload.bpmn")},
                               content_type="multipart/form-data")


def _renamed(xml: str, old: str = 'name="到场处置"', new: str = 'name="到场处置（改）"') -> str:
    assert old in xml
    return xml.replace(old, new, 1)


def _versions(app) -> list[tuple[int, str, int]]:
    with app.app_context():
        return [(v.number, v.status.value, v.revision) for v in db.session.scalars(
            select(HandbookVersion).order_by(HandbookVersion.number))]


def test_save_starts_a_draft_then_updates_it(app, gas) -> None:
    admin = _client(app, gas["admin"])
    first = _save(admin, source=gas["v1"], files={GAS: _renamed(gas["files"][GAS])},
                  note="改名")
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert body["created"] is True and body["number"] == 2 and body["revision"] == 1
    assert body["valid"] is True, body["problems"]
    again = _save(admin, source=body["draft_id"], draft=body["draft_id"], revision=1,
                  files={GAS: _renamed(gas["files"][GAS], new='name="到场处置（再改）"')})
    assert again.status_code == 200 and again.get_json()["revision"] == 2
    assert _versions(app) == [(1, "published", 1), (2, "draft", 2)]
    with app.app_context():
        draft = db.session.get(HandbookVersion, body["draft_id"])
        assert draft.base_version_id == gas["v1"] and draft.change_note == "改名"
        assert "到场处置（再改）" in draft.files[GAS]
        assert draft.files[GAS_DATA] == gas["files"][GAS_DATA]  # unsent files are kept
        assert [e["name"] for e in draft.diff_summary["elements_changed"]] == ["到场处置（再改）"]


def test_a_stale_save_is_a_conflict_naming_who_and_when(app, gas, clock) -> None:
    admin, other = _client(app, gas["admin"]), _client(app, gas["other"])
    body = _save(admin, source=gas["v1"], files={GAS: _renamed(gas["files"][GAS])}).get_json()
    # Both opened revision 1; the other administrator saves first.
    clock.advance(minutes=7)
    theirs = _save(other, source=body["draft_id"], draft=body["draft_id"], revision=1,
                   files={GAS: _renamed(gas["files"][GAS], new='name="他们的"')})
    assert theirs.status_code == 200
    mine = _save(admin, source=body["draft_id"], draft=body["draft_id"], revision=1,
                 files={GAS: _renamed(gas["files"][GAS], new='name="我的"')})
    assert mine.status_code == 409
    error = mine.get_json()
    assert error["code"] == "stale_draft"
    assert error["details"]["updated_by"] == "测试hb.district"
    assert error["details"]["revision"] == 2 and error["details"]["draft_id"] == body["draft_id"]
    assert "测试hb.district" in error["message"]
    shanghai = clock().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert shanghai in error["message"]  # the platform's time zone
    assert error["details"]["updated_at"] == clock().isoformat()
    with app.app_context():
        assert "他们的" in db.session.get(HandbookVersion, body["draft_id"]).files[GAS]
    # Starting another draft beside the open one is the same conflict.
    fresh = _save(admin, source=gas["v1"], files={GAS: gas["files"][GAS]})
    assert fresh.status_code == 409 and fresh.get_json()["details"]["revision"] == 2
    assert _versions(app) == [(1, "published", 1), (2, "draft", 2)]


def test_a_draft_started_from_another_version_replaces_the_draft_content(app, gas) -> None:
    admin = _client(app, gas["admin"])
    data = json.loads(gas["files"][GAS_DATA])
    body = _save(admin, source=gas["v1"], files={GAS: _renamed(gas["files"][GAS])}).get_json()
    restart = _save(admin, source=gas["v1"], draft=body["draft_id"], revision=1,
                    files={GAS: gas["files"][GAS]})
    assert restart.status_code == 200
    with app.app_context():
        draft = db.session.get(HandbookVersion, body["draft_id"])
        assert draft.files[GAS] == gas["files"][GAS]
        assert json.loads(draft.files[GAS_DATA]) == data


@pytest.mark.parametrize("content, code, words", [
    (b"not xml at all", "bad_bpmn_file", "not well-formed XML"),
    (b"", "bad_bpmn_file", "empty"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "bad_bpmn_file",
     "DOCTYPE"),
    (b"<root/>", "bad_bpmn_file", "bpmn:definitions"),
    (small().replace("<bpmndi:BPMNShape", "<!--").replace("</bpmndi:BPMNShape>", "-->")
     .encode(), "bad_bpmn_file", "BPMNDiagram"),
    (b"<x>" + b" " * (2 * 1024 * 1024) + b"</x>", "bad_bpmn_file", "limit"),
], ids=["not-xml", "empty", "doctype", "not-bpmn", "no-layout", "huge"])
def test_import_refuses_bad_files_with_a_clear_message(app, gas, content, code, words) -> None:
    admin = _client(app, gas["admin"])
    answer = _import(admin, "bpmn/imported.bpmn", content)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    error = answer.get_json()
    assert error["code"] == code and "imported.bpmn" in error["message"]
    assert words in json.dumps(error, ensure_ascii=False)


def test_import_reads_other_encodings_and_lists_warnings(app, gas) -> None:
    admin = _client(app, gas["admin"])
    utf16 = small().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    answer = _import(admin, "bpmn/imported.bpmn", utf16)
    assert answer.status_code == 200
    assert 'encoding="UTF-8"' in answer.get_json()["xml"] and "开始" in answer.get_json()["xml"]
    odd = small(extra_ns='xmlns:signavio="http://www.signavio.com"',
                extra='<bpmn:extensionElements><signavio:meta/></bpmn:extensionElements>',
                more='<bpmn:process id="Process_second"/>')
    warnings = _import(admin, "bpmn/imported.bpmn", odd.encode()).get_json()["warnings"]
    assert any("http://www.signavio.com" in w for w in warnings)
    assert any("Process_imported, Process_second" in w for w in warnings)


def test_import_rebinds_a_camunda_prefix_of_another_namespace() -> None:
    odd = small(extra_ns='xmlns:camunda="http://example.com/not-camunda"',
                extra='<bpmn:task id="T" camunda:colour="red"><bpmn:extensionElements>'
                      '<camunda:note>x</camunda:note></bpmn:extensionElements></bpmn:task>')
    imported = read_upload("bpmn/x.bpmn", odd.encode())
    assert 'xmlns:camunda_other="http://example.com/not-camunda"' in imported.xml
    assert "<camunda_other:note>" in imported.xml and 'camunda_other:colour="red"' in imported.xml
    assert "camunda:" not in imported.xml
    assert any("camunda_other" in w for w in imported.warnings)


def test_a_save_with_a_broken_file_writes_nothing(app, gas) -> None:
    admin = _client(app, gas["admin"])
    broken = _save(admin, source=gas["v1"], files={GAS: gas["files"][GAS],
                                                   "bpmn/extra.bpmn": "<bpmn:definitions"})
    assert broken.status_code == 422 and broken.get_json()["code"] == "bad_bpmn_file"
    assert "extra.bpmn" in broken.get_json()["message"]
    bad_name = _save(admin, source=gas["v1"], files={"../etc/passwd": "<x/>"})
    assert bad_name.status_code == 422 and bad_name.get_json()["code"] == "bad_file_name"
    assert _versions(app) == [(1, "published", 1)]


def test_the_check_accepts_a_new_file_name(app, gas) -> None:
    admin = _client(app, gas["admin"])
    answer = admin.client.post("/designer/validate", headers={"X-CSRFToken": admin.token},
                               json={"version_id": gas["v1"], "name": "bpmn/imported.bpmn",
                                     "xml": small()})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert answer.get_json()["valid"] is True


def test_engine_problems_are_saved_but_block_the_review(app, gas, clock) -> None:
    admin = _client(app, gas["admin"])
    broken = gas["files"][GAS].replace('id="scenario_gas"', 'id="scenario_gas_renamed"', 1)
    body = _save(admin, source=gas["v1"], files={GAS: broken}).get_json()
    assert body["valid"] is False and body["problems"]
    submit = admin.post(f"/handbooks/versions/{body['draft_id']}/submit",
                        data={"comment": "提交"})
    assert submit.status_code == 422
    assert "scenario_gas" in submit.get_data(as_text=True)
    report = admin.text(f"/handbooks/versions/{body['draft_id']}/review")
    assert 'data-validation="invalid"' in report
    assert "手册 gas 的流程 scenario_gas 未在其 BPMN 文件中定义" in report
    with app.app_context():
        assert db.session.get(HandbookVersion, body["draft_id"]).status == VersionStatus.DRAFT


def test_submitting_tells_the_heads_of_the_line_in_the_app_and_on_the_webhook(
        app, gas, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    admin = _client(app, gas["admin"])
    body = _save(admin, source=gas["v1"], files={GAS: _renamed(gas["files"][GAS])},
                 note="调整到场处置").get_json()
    submitted = admin.post(f"/handbooks/versions/{body['draft_id']}/submit",
                           data={"comment": "调整到场处置"})
    assert submitted.status_code == 302
    with app.app_context():
        told = db.session.scalars(select(Notification).where(
            Notification.kind == "handbook_review",
            Notification.handbook_version_id == body["draft_id"])).all()
        assert {n.user_id for n in told} == {gas["head"]["id"]}  # not the emergency head
        assert told[0].handbook_version_id == body["draft_id"]
        assert "调整到场处置" in told[0].body and "v2" in told[0].title
        [hook] = [m for m in db.session.scalars(select(OutboundMessage).where(
            OutboundMessage.channel == "webhook")) if m.payload["number"] == 2]
        assert hook.payload["kind"] == "handbook_review"
        assert hook.payload["recipients"] == ["head.jjw"] and hook.payload["number"] == 2
    head = _client(app, gas["head"])
    notices = head.text("/notifications")
    assert f"/handbooks/versions/{body['draft_id']}/review" in notices


def test_the_review_page_shows_names_diffs_and_the_report(app, gas) -> None:
    admin = _client(app, gas["admin"])
    data = json.loads(gas["files"][GAS_DATA])
    data["name"] = data["name"] + "（修订）"
    body = _save(admin, source=gas["v1"],
                 files={GAS: _renamed(gas["files"][GAS])}, note="改名").get_json()
    with app.app_context():  # the data editor is elsewhere; change the data as it would
        draft = db.session.get(HandbookVersion, body["draft_id"])
        draft.files = {**draft.files, GAS_DATA: json.dumps(data, ensure_ascii=False)}
        db.session.commit()
    admin.post(f"/handbooks/versions/{body['draft_id']}/submit", data={"comment": "改名"})
    head = _client(app, gas["head"])
    page = head.text(f"/handbooks/versions/{body['draft_id']}/review")
    assert "测试hb.gas" in page  # the author's name, not the log-in
    assert 'data-validation="valid"' in page
    assert "data-compare" in page and GAS in page
    assert "（修订）" in page and "<code>name</code>" in page
    assert 'id="test-runs"' in page and "data-approve" in page
    own = admin.text(f"/handbooks/versions/{body['draft_id']}/review")
    assert "data-approve" not in own
    versions = head.text("/handbooks/gas")
    assert "测试hb.gas" in versions and "data-compare-link" in versions
    compare = head.text(f"/designer/compare?new={body['draft_id']}")
    assert "（修订）" in compare and f"files/{GAS}" in compare


def test_the_workspace_opens_the_draft_or_starts_from_a_version(app, gas) -> None:
    admin = _client(app, gas["admin"])
    start = admin.text("/designer/handbooks/gas")
    assert "data-save-url" in start and 'data-draft-id=""' in start
    body = _save(admin, source=gas["v1"], files={GAS: _renamed(gas["files"][GAS])}).get_json()
    page = admin.text("/designer/handbooks/gas")
    assert f'data-draft-id="{body["draft_id"]}"' in page and 'data-draft-revision="1"' in page
    assert f'/handbooks/versions/{body["draft_id"]}/files/{GAS}' in page
    older = admin.text(f"/designer/handbooks/gas?from={gas['v1']}")
    assert f'/handbooks/versions/{gas["v1"]}/files/{GAS}' in older
    assert admin.get("/designer/handbooks/nothing").status_code == 404
    assert admin.get("/designer/handbooks/gas?file=bpmn/none.bpmn").status_code == 404
    head = _client(app, gas["head"])  # designs, but drafting is the administrator's
    assert "data-save-url" not in head.text("/designer/handbooks/gas")


def test_data_changes_are_listed_old_to_new() -> None:
    old = {"h.json": json.dumps({"a": 1, "b": {"c": [1, 2]}, "gone": True}), "x.bpmn": "<x/>"}
    new = {"h.json": json.dumps({"a": 2, "b": {"c": [1, 3]}, "new": "是"})}
    found = [(c.path, c.kind, c.old, c.new) for c in data_changes(old, new)]
    assert found == [("a", "changed", "1", "2"), ("b.c[1]", "changed", "2", "3"),
                     ("gone", "removed", "true", None), ("new", "added", None, '"是"')]


def test_nothing_half_saved_when_the_save_is_refused(app, gas) -> None:
    admin = _client(app, gas["admin"])
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(HandbookVersion))
    answer = _save(admin, source=gas["v1"], files={})
    assert answer.status_code == 422
    answer = admin.client.post("/designer/handbooks/gas/draft",
                               headers={"X-CSRFToken": admin.token}, json=[1])
    assert answer.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(HandbookVersion)) == before


def test_read_upload_names_the_file(ctx) -> None:
    with pytest.raises(ValidationFailed) as refused:
        read_upload("bpmn/a.bpmn", b"<bpmn:definitions")
    assert "a.bpmn" in str(refused.value.message)
