"""Ids the database cannot hold (2^31 and more for PostgreSQL's INTEGER columns; 2^63 and more,
or hundreds of digits, for any) are a 404 in a URL and a message in a query string, form field
or JSON body: never a server error."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from app.models import Role
from helpers import Browser

BIG_IDS = (str(2**31), str(2**63), str(2**64 + 1), "9" * 400)
HOLDS_EVERY_ROLE = [(role, "district") for role in Role]


def _int_routes(app: Flask) -> list[tuple[str, str]]:
    """(rule, method) of every route with an integer in its path."""
    found = []
    for rule in app.url_map.iter_rules():
        if "<int:" not in rule.rule:
            continue
        methods = rule.methods - {"HEAD", "OPTIONS"}
        found.append((rule.rule, "GET" if "GET" in methods else sorted(methods)[0]))
    return sorted(found)


def _fill(rule: str, number: str) -> str:
    path = re.sub(r"<int:\w+>", number, rule)
    return re.sub(r"<(?:path:)?\w+>", "x.bpmn", path)


@pytest.fixture
def everyone(as_role) -> Browser:
    return as_role(*HOLDS_EVERY_ROLE)


def _api_token(browser: Browser) -> str:
    return str(browser.client.get("/api/v1/csrf").get_json()["csrf_token"])


def _send(browser: Browser, method: str, path: str, **kw: Any) -> Any:
    if method == "GET":
        return browser.get(path, **kw)
    if path.startswith("/api/"):
        return browser.client.open(path, method=method, json={},
                                   headers={"X-CSRFToken": _api_token(browser)})
    return browser.post(path, **kw)


def test_every_integer_route_is_found(app) -> None:
    assert len(_int_routes(app)) >= 12


@pytest.mark.parametrize("number", BIG_IDS)
def test_ids_beyond_the_id_column_in_a_path_are_not_found(app, everyone, number) -> None:
    for rule, method in _int_routes(app):
        response = _send(everyone, method, _fill(rule, number))
        assert response.status_code == 404, (rule, response.status_code)


def test_the_largest_id_is_looked_up_and_not_found(app, everyone) -> None:
    for rule, method in _int_routes(app):
        response = _send(everyone, method, _fill(rule, str(2**31 - 1)))
        assert response.status_code in (403, 404), (rule, response.status_code)


@pytest.mark.parametrize("query", [
    "town={n}", "page={n}", "per_page={n}", "town=-{n}", "page={n}&town=1"])
@pytest.mark.parametrize("path", ["/api/v1/cases", "/api/v1/tasks/mine"])
def test_api_query_ids_beyond_the_id_column_are_refused_by_field(everyone, path, query) -> None:
    response = everyone.get(f"{path}?{query.format(n=2**31)}")
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "validation_failed"
    assert set(body["details"]) <= {"town", "page", "per_page"} and body["details"]


@pytest.mark.parametrize("path", [
    "/inbox?town={n}", "/inbox?page={n}", "/admin/users?page={n}", "/admin/audit?page={n}",
    "/operations/quality?page={n}", "/inbox?town={n}&page={n}"])
@pytest.mark.parametrize("number", BIG_IDS)
def test_page_query_numbers_beyond_the_id_column_are_harmless(everyone, path, number) -> None:
    response = everyone.get(path.format(n=number))
    assert response.status_code == 200, path


@pytest.mark.parametrize("number", BIG_IDS)
def test_form_ids_beyond_the_id_column_are_a_message(app, everyone, make_user, number) -> None:
    target = make_user((Role.RESPONDER, "town.02"))
    new = everyone.post("/admin/users/new", {
        "username": "bigid", "display_name": "大号", "home_node": number,
        "password": "Aa1!aaaaaaaaa"})
    assert new.status_code == 422
    assert "home_node" in new.get_data(as_text=True)
    role = everyone.post(f"/admin/users/{target['id']}/roles",
                         {"role": "responder", "node": number})
    assert role.status_code == 422
    point = everyone.post("/operations/unknown-points/register?scenario=gas&code=GAS-X", {
        "name": "测点", "node": number, "lat": "31.2", "lon": "121.5"})
    assert point.status_code == 422
    assert "node" in point.get_data(as_text=True)
    read = everyone.post("/notifications/read", {"id": number})
    assert read.status_code == 302


def test_json_ids_beyond_the_id_column_are_refused(everyone) -> None:
    token = everyone.csrf("/designer/")
    response = everyone.client.post("/designer/validate", headers={"X-CSRFToken": token},
                                    json={"name": "bpmn/gas.bpmn", "xml": "<x/>",
                                          "version_id": 2**31})
    assert response.status_code in (404, 422), response.get_data(as_text=True)
    assert response.get_json()["code"] in ("not_found", "validation_failed")
