"""The OpenAPI document: every API route described, every reference defined, security
schemes for API keys and for the session cookie with its CSRF header."""

from __future__ import annotations

import re
from typing import Any

import pytest

PREFIX = "/api/v1"


@pytest.fixture
def document(app, client) -> dict[str, Any]:
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200
    return dict(response.get_json())


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_api_route_is_described(app, document):
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": PREFIX}]
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix(PREFIX))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in described, (path, method)
    assert len(described) == sum(len(r.methods - {"HEAD", "OPTIONS"})
                                 for r in app.url_map.iter_rules()
                                 if r.rule.startswith(PREFIX + "/"))


def test_every_reference_is_defined(document):
    schemas = document["components"]["schemas"]
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_operations_have_responses_security_and_parameters(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerKey"] == {"type": "http", "scheme": "bearer", "description":
                                    schemes["bearerKey"]["description"]}
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"
    assert schemes["sessionCookie"]["in"] == "cookie"
    assert schemes["csrfHeader"] == {**schemes["csrfHeader"], "in": "header",
                                     "name": "X-CSRFToken"}
    for path, ops in document["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        for method, op in ops.items():
            assert op["responses"] and "security" in op, (path, method)
            for requirement in op["security"]:
                assert set(requirement) <= set(schemes)
            if method in ("post", "delete") and path not in ("/alerts", "/heartbeats"):
                assert any("csrfHeader" in r for r in op["security"]), (path, method)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(names), (path, method)
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}


def test_the_intake_schema_comes_from_marshmallow(document):
    alert = document["components"]["schemas"]["Alert"]
    assert set(alert["required"]) == {"scenario", "indicator", "point", "value", "observed_at"}
    assert alert["additionalProperties"] is False
    assert len(alert["properties"]["scenario"]["enum"]) == 15
    assert alert["properties"]["level"]["enum"] == ["red", "orange", "yellow", "blue"]
    assert alert["properties"]["observed_at"]["format"] == "date-time"
    intake = document["paths"]["/alerts"]["post"]
    assert intake["security"] == [{"bearerKey": []}, {"apiKeyHeader": []}]
    assert {"201", "400", "401", "403", "409", "413", "422", "429"} <= set(intake["responses"])
    assert "Retry-After" in intake["responses"]["429"]["headers"]
    assert "429" in document["paths"]["/session"]["post"]["responses"]
    cases = document["paths"]["/cases"]["get"]
    assert {p["name"] for p in cases["parameters"]} >= {"scenario", "level", "status", "town",
                                                       "case_no", "overdue", "page", "per_page"}
    upload = document["paths"]["/cases/{case_no}/attachments"]["post"]["requestBody"]
    assert "multipart/form-data" in upload["content"]


def test_operations_with_parameters_declare_the_400_of_unstorable_text(document):
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if any(p["in"] in ("path", "query") for p in op.get("parameters", [])):
                assert "400" in op["responses"], (path, method)
