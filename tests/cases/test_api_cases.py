"""The case API for mobile clients: session log-in with a CSRF header, scoped case lists,
case detail, the inbox, task actions, comments and evidence; refusals write nothing."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from app.extensions import db
from app.models import Attachment, Case, CaseComment, CaseEvent, CaseTask, PlatformNode, Role
from app.services import case_engine
from cases_fixtures import ANSWERS, fill_form
from helpers import PASSWORD, Api

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def api_as(app, dbconn, make_user) -> Callable[..., Api]:
    """`api_as((Role.RESPONDER, "town.02"))`: a logged-in API client for a new account."""

    def login(*roles: tuple[Role, str], **kw: Any) -> Api:
        account = make_user(*roles, **kw)
        client = Api(app.test_client())
        response = client.login(account["username"], account["password"])
        assert response.status_code == 200, response.get_json()
        return client

    return login


@pytest.fixture
def gas_case(app, published, point, send) -> str:
    """An open gas case in 陆家嘴 (town.02) with two alerts; its assessment task is ready."""
    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    send("gas", "ch4_lel", 33.5, "GAS-MH-0001")
    return str(case_no)


@pytest.fixture
def admin(api_as) -> Api:
    return api_as((Role.BUSINESS_ADMIN, "scenario.gas"))


def _count(app, model: Any, **where: Any) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return db.session.scalar(query) or 0


def _task(app, case_no: str) -> CaseTask:
    with app.app_context():
        task = db.session.scalar(select(CaseTask).join(Case).where(
            Case.case_no == case_no, CaseTask.status == "ready").order_by(CaseTask.id))
        assert task is not None
        db.session.expunge_all()
        return task


def _valid_form(app, task_id: int) -> dict[str, Any]:
    with app.app_context():
        task = db.session.get_one(CaseTask, task_id)
        spec = case_engine.load(task.case).compiled
        return fill_form(spec.form_fields(task.process_id, task.element_id),
                         ANSWERS.get(task.element_id, {}))


def _node_id(app, code: str) -> int:
    with app.app_context():
        return int(db.session.scalar(select(PlatformNode.id).where(PlatformNode.code == code)))


# ---------------------------------------------------------------- session

def test_log_in_and_out_with_a_csrf_header(app, dbconn, make_user):
    account = make_user((Role.RESPONDER, "town.02"))
    api = Api(app.test_client())
    assert api.get("/session").status_code == 401
    assert api.get("/session").get_json()["code"] == "login_required"
    api.token = api.get("/csrf").get_json()["csrf_token"]
    no_header = api.post("/session", {"username": account["username"], "password": PASSWORD},
                         csrf=False)
    assert no_header.status_code == 400 and no_header.get_json()["code"] == "csrf"
    wrong = api.post("/session", {"username": account["username"], "password": "Wrong-2026"})
    assert wrong.status_code == 401 and wrong.get_json()["code"] == "bad_credentials"
    good = api.login(account["username"])
    assert good.status_code == 200
    me = good.get_json()["user"]
    assert me["username"] == account["username"]
    assert me["roles"] == [{"role": "responder", "node": {
        "id": _node_id(app, "town.02"), "code": "town.02", "name": "陆家嘴街道"}}]
    assert api.get("/session").status_code == 200
    assert api.delete("/session", csrf=False).status_code == 400
    assert api.delete("/session").status_code == 204
    assert api.get("/session").status_code == 401
    assert api.get("/cases").status_code == 401


@pytest.mark.parametrize(("body", "field"), [
    ({"password": PASSWORD}, "username"), ({"username": 5, "password": PASSWORD}, "username"),
    ({"username": "someone"}, "password"), ({"username": "u", "password": ["x"]}, "password"),
    ({"username": "u", "password": "p", "remember": True}, "remember"),
])
def test_log_in_fields_are_checked(app, dbconn, body, field):
    api = Api(app.test_client())
    api.token = api.get("/csrf").get_json()["csrf_token"]
    response = api.post("/session", body)
    assert response.status_code == 422 and field in response.get_json()["details"]


def test_an_expired_password_must_be_changed_first(app, api_as):
    api = api_as((Role.RESPONDER, "town.02"), must_change_password=True)
    response = api.get("/cases")
    assert response.status_code == 403
    assert response.get_json()["code"] == "password_change_required"


def test_changes_need_a_session(app, gas_case):
    api = Api(app.test_client())
    task = _task(app, gas_case)
    response = api.post(f"/tasks/{task.id}/claim")
    assert response.status_code == 401 and response.get_json()["code"] == "login_required"
    assert _task(app, gas_case).claimed_by_id is None


# ---------------------------------------------------------------- cases

def test_cases_are_listed_within_scope_and_filtered(app, published, point, send, admin,
                                                    api_as, clock):
    point("GAS-MH-0001", "gas")
    point("GAS-MH-0022", "gas", town="town.22")
    here = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    there = send("gas", "ch4_lel", 60.0, "GAS-MH-0022")["case_no"]
    listed = admin.get("/cases").get_json()
    assert listed["total"] == 2 and {c["case_no"] for c in listed["items"]} == {here, there}
    local = api_as((Role.RESPONDER, "town.02")).get("/cases").get_json()
    assert [c["case_no"] for c in local["items"]] == [here]
    assert local["items"][0]["node"]["code"] == "town.02"

    def numbers(query: str, api: Api = admin) -> list[str]:
        return [c["case_no"] for c in api.get(f"/cases?{query}").get_json()["items"]]

    assert numbers(f"town={_node_id(app, 'town.22')}") == [there]
    assert numbers("level=orange") == [there]
    assert numbers("status=closed") == []
    assert numbers(f"case_no={here[-3:]}&scenario=gas") == [here]
    assert numbers("overdue=true") == []
    clock.advance(days=2)
    assert admin.get("/cases").status_code == 401  # idle for two days: logged out
    later = api_as((Role.BUSINESS_ADMIN, "scenario.gas"))
    assert set(numbers("overdue=true", later)) == {here, there}
    paged = later.get("/cases?per_page=1&page=2").get_json()
    assert paged["pages"] == 2 and len(paged["items"]) == 1
    outsider = api_as((Role.TECH_ADMIN, "district")).get("/cases")
    assert outsider.status_code == 403


@pytest.mark.parametrize(("query", "field"), [
    ("level=purple", "level"), ("status=gone", "status"), ("scenario=volcano", "scenario"),
    ("town=abc", "town"), ("town=999999", "town"), ("page=0", "page"),
    ("per_page=500", "per_page"), ("overdue=maybe", "overdue"), ("case_no=" + "9" * 41,
                                                                 "case_no"),
])
def test_case_list_arguments_are_checked(app, admin, query, field):
    response = admin.get(f"/cases?{query}")
    assert response.status_code == 422 and field in response.get_json()["details"]


def test_case_detail_has_alerts_tasks_forms_and_history(app, gas_case, admin, api_as):
    response = admin.get(f"/cases/{gas_case}")
    assert response.status_code == 200
    detail = response.get_json()
    assert detail["case"]["case_no"] == gas_case and detail["case"]["alert_count"] == 2
    assert [a["value"] for a in detail["alerts"]] == [30.0, 33.5]
    assert detail["point"]["code"] == "GAS-MH-0001"
    task = detail["tasks"][0]
    assert task["can_act"] is True and task["form"]
    assert {"id", "label", "type", "required", "options"} <= set(task["form"][0])
    assert detail["events"] and detail["events"][0]["kind"] == "opened"
    responder = api_as((Role.RESPONDER, "town.02")).get(f"/cases/{gas_case}").get_json()
    assert responder["tasks"][0]["can_act"] is False  # the assessment is not a responder's
    elsewhere = api_as((Role.RESPONDER, "town.22")).get(f"/cases/{gas_case}")
    assert elsewhere.status_code == 403
    assert admin.get("/cases/RQ-1999-000001").status_code == 404


def test_my_tasks_is_the_inbox(app, gas_case, admin):
    mine = admin.get("/tasks/mine").get_json()
    assert mine["total"] == 1 and mine["items"][0]["case"]["case_no"] == gas_case
    assert mine["counts"]["total"] == 1
    assert admin.get("/tasks/mine?status=mine").get_json()["total"] == 0
    bad = admin.get("/tasks/mine?status=everything")
    assert bad.status_code == 422 and "status" in bad.get_json()["details"]


# ---------------------------------------------------------------- task actions

def test_claim_release_and_complete(app, gas_case, admin, api_as):
    colleague = api_as((Role.BUSINESS_ADMIN, "scenario.gas"))
    task = _task(app, gas_case)
    events = _count(app, CaseEvent)
    claimed = admin.post(f"/tasks/{task.id}/claim")
    assert claimed.status_code == 200, claimed.get_json()
    assert claimed.get_json()["claimed_by"]["username"].startswith("user")
    events = _count(app, CaseEvent)
    for action in ("claim", "release", "complete"):
        body = _valid_form(app, task.id) if action == "complete" else None
        taken = colleague.post(f"/tasks/{task.id}/{action}", body)
        assert taken.status_code == 409, (action, taken.get_json())
    assert _count(app, CaseEvent) == events
    released = admin.post(f"/tasks/{task.id}/release")
    assert released.status_code == 200 and released.get_json()["claimed_by"] is None
    events = _count(app, CaseEvent)
    invalid = admin.post(f"/tasks/{task.id}/complete",
                         {**_valid_form(app, task.id), "no_such_field": "x"})
    assert invalid.status_code == 422 and "no_such_field" in invalid.get_json()["details"]
    assert _count(app, CaseEvent) == events
    assert _task(app, gas_case).id == task.id
    done = admin.post(f"/tasks/{task.id}/complete", _valid_form(app, task.id))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["case"]["case_no"] == gas_case
    assert task.id not in [t["id"] for t in done.get_json()["tasks"]]
    events = _count(app, CaseEvent)
    again = admin.post(f"/tasks/{task.id}/complete", _valid_form(app, task.id))
    assert again.status_code == 409 and again.get_json()["code"] == "task_gone"
    assert _count(app, CaseEvent) == events


@pytest.mark.parametrize(("who", "status", "code"), [
    ((Role.RESPONDER, "town.22"), 403, "forbidden"),
    ((Role.RESPONDER, "town.02"), 403, "not_your_task"),
    ((Role.AUDITOR, "district"), 403, "forbidden"),
])
def test_completing_a_task_that_is_not_yours(app, gas_case, api_as, who, status, code):
    task = _task(app, gas_case)
    events = _count(app, CaseEvent)
    response = api_as(who).post(f"/tasks/{task.id}/complete", _valid_form(app, task.id))
    assert response.status_code == status and response.get_json()["code"] == code
    assert _count(app, CaseEvent) == events and _task(app, gas_case).id == task.id


def test_bad_completion_requests(app, gas_case, admin):
    task = _task(app, gas_case)
    events = _count(app, CaseEvent)
    no_csrf = admin.post(f"/tasks/{task.id}/complete", _valid_form(app, task.id), csrf=False)
    assert no_csrf.status_code == 400 and no_csrf.get_json()["code"] == "csrf"
    not_object = admin.post(f"/tasks/{task.id}/complete", ["verdict"])
    assert not_object.status_code == 400 and not_object.get_json()["code"] == "bad_json"
    bad_json = admin.post(f"/tasks/{task.id}/complete", data=b"{", content_type="application/json")
    assert bad_json.status_code == 400 and bad_json.get_json()["code"] == "bad_json"
    missing = admin.post("/tasks/999999/complete", {})
    assert missing.status_code == 404
    assert _count(app, CaseEvent) == events


# ---------------------------------------------------------------- comments and evidence

def test_comments(app, gas_case, admin, api_as):
    added = admin.post(f"/cases/{gas_case}/comments", {"body": "已联系燃气公司到场。"})
    assert added.status_code == 201 and added.get_json()["body"] == "已联系燃气公司到场。"
    comments = admin.get(f"/cases/{gas_case}").get_json()["comments"]
    assert [c["body"] for c in comments] == ["已联系燃气公司到场。"]
    for body in ({}, {"body": 123}, {"body": "  "}, {"body": "长" * 4001},
                 {"body": "ok", "extra": 1}):
        refused = admin.post(f"/cases/{gas_case}/comments", body)
        assert refused.status_code == 422, body
        assert set(refused.get_json()["details"]) & {"body", "extra"}
    outsider = api_as((Role.RESPONDER, "town.22")).post(f"/cases/{gas_case}/comments",
                                                         {"body": "看不到"})
    assert outsider.status_code == 403
    assert admin.post("/cases/RQ-1999-000001/comments", {"body": "x"}).status_code == 404
    assert _count(app, CaseComment) == 1


def _multipart(**parts: Any) -> dict[str, Any]:
    """A multipart body built in memory (the test client would spool a big one to a file it
    never closes)."""
    values = {name: FileStorage(BytesIO(part[0]), filename=part[1], content_type=part[2])
              if isinstance(part, tuple) else part for name, part in parts.items()}
    boundary, body = encode_multipart(MultiDict(values))
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def test_attachments(app, gas_case, admin):
    path = f"/cases/{gas_case}/attachments"
    added = admin.post(path, **_multipart(file=(PNG, "现场.png", "image/png")))
    assert added.status_code == 201, added.get_json()
    meta = added.get_json()
    assert meta["size"] == len(PNG) and len(meta["sha256"]) == 64 and "content" not in meta
    assert admin.get(f"/cases/{gas_case}").get_json()["attachments"][0]["filename"] == "现场.png"
    wrong_type = admin.post(path, **_multipart(file=(b"hello", "a.txt", "text/plain")))
    assert wrong_type.status_code == 422 and "file" in wrong_type.get_json()["details"]
    no_file = admin.post(path, **_multipart(note="x"))
    assert no_file.status_code == 422 and "file" in no_file.get_json()["details"]
    as_json = admin.post(path, {"file": "aGVsbG8="})
    assert as_json.status_code == 400
    over_limit = admin.post(path, **_multipart(file=(b"\0" * (10 * 1024 * 1024 + 1), "a.png",
                                                      "image/png")))
    assert over_limit.status_code == 422 and "file" in over_limit.get_json()["details"]
    too_big = admin.post(path, **_multipart(file=(b"\0" * (11 * 1024 * 1024), "big.png",
                                                   "image/png")))
    assert too_big.status_code == 413 and too_big.get_json()["code"] == "http_413"
    assert _count(app, Attachment) == 1
