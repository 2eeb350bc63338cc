"""The OpenAPI 3 document of the JSON API, generated from its marshmallow schemas."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify
from marshmallow import fields

from app.api import alert_schemas as a
from app.api import schemas as s

bp = Blueprint("openapi", __name__)

PREFIX = "/api/v1"

_ERRORS = {
    400: "Bad JSON (bad_json), wrong content type, text that cannot be stored such as a NUL "
         "character in the path or query (bad_text), or a missing/invalid X-CSRFToken header "
         "(csrf)",
    401: "Missing, malformed, invalid or revoked credentials",
    403: "Not allowed for this caller, scope, role or scenario",
    404: "No such case or task",
    409: "Conflict: the task is gone or claimed by another, or no published handbook",
    413: "Request body too large",
    422: "Invalid fields: details maps field -> messages (batch: index -> field -> messages)",
    429: "Rate limit reached (per API key; log-in per address and per user name): wait the "
         "Retry-After seconds (also details.retry_after)",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before the next request",
                                "schema": {"type": "integer", "minimum": 1}}}

KEY_AUTH: list[dict[str, list[str]]] = [{"bearerKey": []}, {"apiKeyHeader": []}]
SESSION_READ: list[dict[str, list[str]]] = [{"sessionCookie": []}]
SESSION_WRITE: list[dict[str, list[str]]] = [{"sessionCookie": [], "csrfHeader": []}]
PUBLIC: list[dict[str, list[str]]] = []


def _json(schema: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, *, ok: tuple[int, Any, str], errors: tuple[int, ...] = (),
        security: list[dict[str, list[str]]], body: dict[str, Any] | None = None,
        parameters: list[dict[str, Any]] | None = None, tag: str,
        also: tuple[tuple[int, str], ...] = ()) -> dict[str, Any]:
    """One operation; `also` names further success statuses answering the same schema."""
    status, schema, description = ok
    responses: dict[str, Any] = {
        str(code): _json(schema, text) if schema is not None else {"description": text}
        for code, text in ((status, description), *also)}
    for code in errors:
        responses[str(code)] = _json(s.ErrorSchema, _ERRORS[code])
        if code == 429:
            responses[str(code)]["headers"] = _RETRY_AFTER
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses,
                                 "security": security}
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _body(schema: Any, media: str = "application/json",
          examples: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"required": True, "content": {media: content}}


ALERT_EXAMPLE = {"scenario": "gas", "indicator": "ch4_lel", "point": "GAS-MH-0001",
                 "value": 30.0, "observed_at": "2026-07-26T10:00:00+08:00",
                 "idempotency_key": "gas-GAS-MH-0001-20260726T100000"}


CASE_NO = {"in": "path", "name": "case_no", "required": True, "schema": {"type": "string"},
           "description": "e.g. RQ-2026-000001"}
TASK_ID = {"in": "path", "name": "task_id", "required": True, "schema": {"type": "integer"}}
IDEMPOTENCY = {"in": "header", "name": "Idempotency-Key", "required": False,
               "schema": {"type": "string", "maxLength": 120},
               "description": "for a single alert: same as its idempotency_key"}
AUTH_ERRORS = (401, 403)


def _operations() -> dict[str, dict[str, Any]]:
    task_write = (400, 401, 403, 404, 409)
    return {
        "/health": {"get": _op(
            "Liveness: database reachable and the scheduler's last beat", tag="system",
            ok=(200, {"type": "object"}, "Alive"), security=PUBLIC)},
        "/openapi.json": {"get": _op(
            "This document", tag="system", ok=(200, {"type": "object"}, "OpenAPI 3"),
            security=PUBLIC)},
        "/alerts": {"post": _op(
            "Report one alert or a batch ({\"alerts\": [...]}); all-or-nothing, stored "
            "before the answer", tag="intake", security=KEY_AUTH,
            body=_body({"oneOf": [a.AlertSchema, a.AlertBatchSchema]}, examples={
                "one": ALERT_EXAMPLE,
                "batch": {"alerts": [{**ALERT_EXAMPLE, "idempotency_key": "batch-1"},
                                     {**ALERT_EXAMPLE, "value": 31.5,
                                      "idempotency_key": "batch-2"}]}}),
            parameters=[IDEMPOTENCY],
            ok=(201, {"oneOf": [a.AlertOutcomeSchema, a.AlertBatchResultSchema]}, "Stored"),
            also=((200, "Every alert was a retry of a stored one (replayed=true): the first "
                        "outcome again"),),
            errors=(400, 401, 403, 409, 413, 422, 429))},
        "/heartbeats": {"post": _op(
            "The source system (and the points named) is alive: feed health (Art 8)",
            tag="intake", security=KEY_AUTH,
            body=_body({"type": "object", "properties": {"points": {
                "type": "array", "maxItems": 10000,
                "items": {"type": "string", "minLength": 1, "maxLength": 80}}}},
                examples={"points": {"points": ["GAS-MH-0001"]}}),
            ok=(202, {"type": "object"}, "Recorded"), errors=(400, 401, 413, 422, 429))},
        "/csrf": {"get": _op(
            "A CSRF token for this session (send it as X-CSRFToken on POST/DELETE)",
            tag="session", ok=(200, s.CsrfSchema, "Token"), security=PUBLIC)},
        "/session": {
            "get": _op("The logged-in user", tag="session", security=SESSION_READ,
                       ok=(200, s.SessionSchema, "Logged in"), errors=(401,)),
            "post": _op("Log in with user name and password (needs the X-CSRFToken of GET "
                        "/csrf; answers a new token)", tag="session", security=SESSION_WRITE,
                        body=_body(s.LoginSchema, examples={"login": {
                            "username": "rs_lujiazui", "password": "••••••••••"}}),
                        ok=(200, s.SessionSchema, "Logged in"),
                        errors=(400, 401, 413, 422, 429)),
            "delete": _op("Log out", tag="session", security=SESSION_WRITE,
                          ok=(204, None, "Logged out"), errors=(400, 401)),
        },
        "/cases": {"get": _op(
            "Cases in the caller's scope, newest first", tag="cases", security=SESSION_READ,
            parameters=[{"in": "query", "schema": s.CaseListArgs}],
            ok=(200, s.CasePageSchema, "One page"), errors=(400, *AUTH_ERRORS, 422))},
        "/cases/{case_no}": {"get": _op(
            "One case with its alerts, open tasks and forms, comments, evidence and history",
            tag="cases", security=SESSION_READ, parameters=[CASE_NO],
            ok=(200, s.CaseDetailSchema, "The case"), errors=(400, *AUTH_ERRORS, 404))},
        "/tasks/mine": {"get": _op(
            "My inbox: tasks assigned to me or open to claim, overdue first", tag="tasks",
            security=SESSION_READ, parameters=[{"in": "query", "schema": s.InboxArgs}],
            ok=(200, s.InboxPageSchema, "One page"), errors=(400, *AUTH_ERRORS, 422))},
        "/tasks/{task_id}/claim": {"post": _op(
            "Claim a ready task", tag="tasks", security=SESSION_WRITE, parameters=[TASK_ID],
            ok=(200, s.OpenTaskSchema, "Claimed"), errors=task_write)},
        "/tasks/{task_id}/release": {"post": _op(
            "Release a task I claimed", tag="tasks", security=SESSION_WRITE,
            parameters=[TASK_ID], ok=(200, s.OpenTaskSchema, "Released"), errors=task_write)},
        "/tasks/{task_id}/complete": {"post": _op(
            "Complete a task with its form (field id -> value)", tag="tasks",
            security=SESSION_WRITE, parameters=[TASK_ID],
            body=_body({"type": "object", "additionalProperties": True,
                        "description": "form values by field id; see the task's form"}),
            ok=(200, s.CompletedSchema, "Completed"), errors=(*task_write, 413, 422))},
        "/cases/{case_no}/comments": {"post": _op(
            "Comment on a case", tag="cases", security=SESSION_WRITE, parameters=[CASE_NO],
            body=_body(s.CommentSchema, examples={"comment": {"body": "已联系燃气公司到场。"}}),
            ok=(201, s.CommentOutSchema, "Added"),
            errors=(400, 401, 403, 404, 413, 422))},
        "/cases/{case_no}/attachments": {"post": _op(
            "Attach evidence (multipart/form-data, part `file`)", tag="cases",
            security=SESSION_WRITE, parameters=[CASE_NO],
            body=_body(s.AttachmentUploadSchema, "multipart/form-data"),
            ok=(201, s.AttachmentOutSchema, "Added"), errors=(400, 401, 403, 404, 413, 422))},
    }


def _scenario_enum(self: Any, field: fields.Field, **_: Any) -> dict[str, Any]:
    if field.metadata.get("choices_of") == "scenarios":
        return {"enum": list(s.scenario_codes())}
    return {}


SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerKey": {"type": "http", "scheme": "bearer",
                  "description": "A source system's API key: Authorization: Bearer pk_…"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "The same API key in its own header"},
    "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                   "description": "The session's CSRF token (GET /api/v1/csrf, or the one "
                                  "answered by log-in); required on POST and DELETE"},
}


def build_spec() -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Pudong urban-safety operations API", version="1.0.0", openapi_version="3.0.3",
        plugins=[plugin],
        info={"description": "Source systems report alerts with an API key; people work "
                             "cases with a session cookie and a CSRF header. Every error is "
                             "JSON {code, message, details}."},
        servers=[{"url": PREFIX}])
    assert plugin.converter is not None
    plugin.converter.add_attribute_function(_scenario_enum)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    spec.components.security_scheme("sessionCookie", {
        "type": "apiKey", "in": "cookie", "name": current_app.config["SESSION_COOKIE_NAME"],
        "description": "The session cookie set by POST /api/v1/session"})
    spec.components.schema("Error", schema=s.ErrorSchema)
    for path, operations in _operations().items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_document() -> tuple[Any, int]:
    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = build_spec()
    return jsonify(document), 200
