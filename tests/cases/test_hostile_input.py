"""Bodies and form posts that are not what they claim (broken or deep JSON, lone surrogates, NUL
characters, other encodings, the wrong top-level type) are a 400 naming the problem, in the
one error format, and write nothing; well-formed Unicode still goes through."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Alert, AuditRecord, CaseComment, CaseEvent, Role
from helpers import API, Api


@pytest.fixture
def admin(app, make_user) -> Api:
    account = make_user((Role.BUSINESS_ADMIN, "scenario.gas"))
    client = Api(app.test_client())
    assert client.login(account["username"], account["password"]).status_code == 200
    return client


def _writes(app) -> tuple[int, ...]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(m)) or 0
                     for m in (Alert, CaseComment, CaseEvent, AuditRecord))


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def hostile_bodies(valid: dict[str, Any], text_field: str) -> list[tuple[str, bytes]]:
    """(what is wrong, raw body): each a variation of a body the endpoint would accept."""
    good = json.dumps(valid)

    def with_text(value: str) -> bytes:
        return json.dumps({**valid, text_field: value}).encode()

    def with_raw(fragment: str) -> bytes:
        return (good[:-1] + f', "extra": {fragment}}}').encode()

    return [
        ("truncated", good[:-1].encode()),
        ("trailing garbage", (good + " x").encode()),
        ("empty", b""),
        ("NaN literal", with_raw("NaN")),
        ("Infinity literal", with_raw("-Infinity")),
        ("lone high surrogate", with_text("a\ud800b")),
        ("lone low surrogate", with_text("\udc00")),
        ("surrogates in the wrong order", with_text("\udc00\ud800")),
        ("lone surrogate in a key", (good[:-1] + ', "\\ud800": 1}').encode()),
        ("NUL character", with_text("a\u0000b")),
        ("UTF-8-encoded surrogate", json.dumps({**valid, text_field: "\ud800"},
                                               ensure_ascii=False).encode("utf-8",
                                                                          "surrogatepass")),
        ("Latin-1 text", json.dumps({**valid, text_field: "café"},
                                    ensure_ascii=False).encode("latin-1")),
        ("UTF-16", good.encode("utf-16")),
        ("byte order mark", b"\xef\xbb\xbf" + good.encode()),
        ("a list", f"[{good}]".encode()),
        ("a string", b'"hello"'),
        ("a number", b"42"),
        ("null", b"null"),
        ("true", b"true"),
        ("nested 100 deep", with_raw(_deep(100))),
        ("nested 20000 deep", with_raw(_deep(20_000))),
        ("only brackets", b"[" * 50_000),
    ]


def _assert_bad_json(response: Any, label: str) -> None:
    assert response.status_code == 400, (label, response.status_code,
                                         response.get_data(as_text=True)[:300])
    body = response.get_json()
    assert set(body) == {"code", "message", "details"}, label
    assert body["code"] == "bad_json", (label, body)
    assert body["message"] and body["details"], (label, body)


def test_alert_intake_refuses_every_malformed_body(app, client, published, source_key, clock,
                                                   point):
    point("GAS-MH-0001", "gas")
    valid = {"scenario": "gas", "indicator": "ch4_lel", "point": "GAS-MH-0001", "value": 30.0,
             "observed_at": clock().isoformat(), "payload": {"note": "ok"}}
    before = _writes(app)
    for label, raw in hostile_bodies(valid, "point"):
        response = client.post(f"{API}/alerts", data=raw, content_type="application/json",
                               headers={"Authorization": f"Bearer {source_key}"})
        _assert_bad_json(response, label)
    assert _writes(app) == before


def test_log_in_refuses_every_malformed_body(app, make_user) -> None:
    account = make_user((Role.RESPONDER, "town.02"))
    api = Api(app.test_client())
    api.token = api.client.get(f"{API}/csrf").get_json()["csrf_token"]
    before = _writes(app)
    valid = {"username": account["username"], "password": account["password"]}
    for label, raw in hostile_bodies(valid, "username"):
        response = api.post("/session", data=raw, content_type="application/json")
        _assert_bad_json(response, label)
    assert _writes(app) == before
    assert api.client.get(f"{API}/session").status_code == 401


def test_comments_and_task_forms_refuse_every_malformed_body(app, gas_case, admin) -> None:
    from app.models import Case, CaseTask

    with app.app_context():
        task_id = db.session.scalar(select(CaseTask.id).join(Case).where(
            Case.case_no == gas_case, CaseTask.status == "ready"))
    before = _writes(app)
    for label, raw in hostile_bodies({"body": "已到场"}, "body"):
        response = admin.post(f"/cases/{gas_case}/comments", data=raw,
                              content_type="application/json")
        _assert_bad_json(response, f"comment: {label}")
    for label, raw in hostile_bodies({"verdict": "confirmed"}, "verdict"):
        response = admin.post(f"/tasks/{task_id}/complete", data=raw,
                              content_type="application/json")
        _assert_bad_json(response, f"task: {label}")
    assert _writes(app) == before


def test_the_problem_is_named(app, gas_case, admin) -> None:
    path = f"/cases/{gas_case}/comments"
    surrogate = admin.post(path, data=b'{"body": "x\\ud800"}', content_type="application/json")
    assert "body" in json.dumps(surrogate.get_json()["details"])
    assert "U+D800" in json.dumps(surrogate.get_json()["details"])
    syntax = admin.post(path, data=b'{"body": }', content_type="application/json")
    assert "column 10" in json.dumps(syntax.get_json()["details"])
    deep = admin.post(path, data=('{"body": "x", "a": ' + _deep(200) + "}").encode(),
                      content_type="application/json")
    assert "32" in deep.get_json()["message"]
    listed = admin.post(path, data=b'[{"body": "x"}]', content_type="application/json")
    assert "array" in json.dumps(listed.get_json())


def test_well_formed_unicode_still_goes_through(app, gas_case, admin) -> None:
    text = "燃气公司已到场 😀 \u00e9\u0301 \t tab"
    raw = json.dumps({"body": text}).encode()  # the emoji as an escaped surrogate pair
    added = admin.post(f"/cases/{gas_case}/comments", data=raw, content_type="application/json")
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["body"] == text.strip()
    utf8 = admin.post(f"/cases/{gas_case}/comments",
                      data=json.dumps({"body": text}, ensure_ascii=False).encode(),
                      content_type="application/json; charset=utf-8")
    assert utf8.status_code == 201


def test_the_designer_check_refuses_malformed_bodies(app, as_role) -> None:
    designer = as_role(Role.BUSINESS_ADMIN, node="district")
    token = designer.csrf("/")
    for label, raw in hostile_bodies({"name": "bpmn/gas.bpmn", "xml": "<x/>",
                                      "version_id": 1}, "xml"):
        response = designer.client.post("/designer/validate", data=raw,
                                        content_type="application/json",
                                        headers={"X-CSRFToken": token})
        _assert_bad_json(response, label)


# ---------------------------------------------------------------- web forms

@pytest.fixture
def responder(as_role) -> Any:
    return as_role(Role.BUSINESS_ADMIN, node="scenario.gas")


@pytest.mark.parametrize("text", ["a\x00b", "\x00"])
def test_a_nul_character_in_a_form_is_refused_with_a_message(app, gas_case, responder,
                                                             text) -> None:
    before = _writes(app)
    response = responder.post(f"/cases/{gas_case}/comments", {"body": text})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "NUL" in page and "<code>body</code>" in page
    assert _writes(app) == before


@pytest.mark.parametrize("post", [
    lambda b, make: b.client.post("/login", data={"username": "a\x00", "password": "x",
                                                  "csrf_token": b.csrf("/login")}),
    lambda b, make: b.post("/admin/users/new", {"username": "nul", "display_name": "a\x00b",
                                                "home_node": "1", "password": "x"}),
    lambda b, make: b.post(f"/admin/users/{make()['id']}/password", {"password": "Aa1!\x00xxxx"}),
    lambda b, make: b.post("/operations/silences", {"scenario": "gas", "point_code": "P\x00",
                                                    "starts_at": "2026-07-26T10:00",
                                                    "ends_at": "2026-07-26T12:00",
                                                    "reason": "x"}),
])
def test_nul_characters_are_refused_on_every_form(app, as_role, make_user,
                                                  post: Callable[..., Any]) -> None:
    admin = as_role((Role.SYSTEM_ADMIN, "district"), (Role.BUSINESS_ADMIN, "district"))
    before = _writes(app)
    response = post(admin, lambda: make_user((Role.RESPONDER, "town.02")))
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "NUL" in response.get_data(as_text=True)
    assert _writes(app)[:3] == before[:3]


@pytest.mark.parametrize("path", ["/inbox?q=%00", "/inbox?%00=1", "/cases/RQ%00/replay",
                                  "/handbooks/gas%00", f"{API}/cases?case_no=%00",
                                  f"{API}/cases/RQ%00"])
def test_nul_characters_in_the_address_are_refused(responder, path) -> None:
    response = responder.get(path)
    assert response.status_code in (400, 404), response.get_data(as_text=True)[:300]
