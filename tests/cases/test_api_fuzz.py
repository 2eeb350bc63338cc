"""Property-based run of the whole OpenAPI document (/api/v1/openapi.json) through the WSGI app:
every operation with generated valid and invalid input, called with a source system's API key
and a logged-in session with its X-CSRFToken header. No answer is a server error, and every
answer matches what the document says (status, content type, body schema)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseTask, Role
from app.services import handbooks
from cases_fixtures import publish_all
from helpers import API, Api

# 14 operations x this many examples stays well within 90 seconds on SQLite; set FUZZ_EXAMPLES
# higher to search longer.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
_BUNDLES: list[Any] = []


@pytest.fixture
def caller(app: Flask, dbconn: Any, clock: Any, monkeypatch: pytest.MonkeyPatch,
           make_user: Any, source_key: str, point: Any, send: Any) -> dict[str, Any]:
    """A published gas handbook with one open case, a logged-in person who may act on it,
    and what every request carries: the session cookie, its CSRF header and the API key."""
    if not _BUNDLES:
        _BUNDLES.extend(b for b in handbooks.collect_bundles() if b.key == "gas")
    monkeypatch.setattr(handbooks, "collect_bundles", lambda root=None: list(_BUNDLES))
    with app.app_context():
        publish_all(clock())
        db.session.commit()
    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    with app.app_context():
        task_id = db.session.scalar(select(CaseTask.id).join(Case).where(
            Case.case_no == case_no, CaseTask.status == "ready"))
    account = make_user((Role.BUSINESS_ADMIN, "district"), (Role.RESPONDER, "district"),
                        (Role.DEPARTMENT_HEAD, "district"))
    api = Api(app.test_client())
    assert api.login(account["username"], account["password"]).status_code == 200
    cookie = api.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return {"client": api.client, "case_no": case_no, "task_id": task_id,
            "cookies": {cookie.key: cookie.value},
            "headers": {"X-CSRFToken": api.token, "Authorization": f"Bearer {source_key}"}}


def _operations(app: Flask) -> list[Any]:
    document = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    return [result.ok() for result in document.get_all_operations()]


def test_the_api_keeps_its_document_under_generated_input(app: Flask, caller: dict[str, Any]
                                                          ) -> None:
    """Each operation: the document's own examples, then valid and invalid generated input.
    (Driven here rather than by schemathesis' pytest plugin, so the fixtures and the rolled
    back transaction are the usual ones.)"""
    failures: list[str] = []
    for operation in _operations(app):
        # Half the calls reach the real case and task; the rest name ones that do not exist.
        real = {name: caller[name] for name in ("case_no", "task_id")
                if any(p.name == name for p in operation.path_parameters)}
        strategy = st.one_of(
            *operation.get_strategies_from_examples(),
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real),
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE))

        @given(case=strategy)
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            # The session cookie goes afresh each time: a generated DELETE /session ends it.
            case.call_and_validate(session=caller["client"], headers=caller["headers"],
                                   cookies=caller["cookies"], checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
