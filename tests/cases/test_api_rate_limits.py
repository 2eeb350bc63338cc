"""Alert intake is rate limited per API key, not per address: one source system in a loop
cannot crowd out the others, and the default leaves room for a typhoon day's batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from app.extensions import db
from app.models import Role, User
from app.services import api_keys

URL = "/api/v1/alerts"


def _second_key(app: Flask, clock: Any, make_user: Callable[..., Any]) -> str:
    admin = make_user((Role.TECH_ADMIN, "district"))
    with app.app_context():
        issued = api_keys.issue(db.session.get(User, admin["id"]), name="Video AI",
                                source_type="video_ai", scenarios=["gas"], now=clock(),
                                known_scenarios={"gas"})
        db.session.commit()
        return issued.secret


def _post(app: Flask, key: str, body: Any, address: str = "127.0.0.1") -> Any:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client.post(URL, json=body, headers={"Authorization": f"Bearer {key}"})


def _alert(clock: Any, n: int) -> dict[str, Any]:
    return {"scenario": "gas", "indicator": "ch4_lel", "point": "GAS-MH-0001", "value": 30.0,
            "observed_at": clock().isoformat(), "idempotency_key": f"rl-{n}"}


def test_intake_is_limited_per_api_key(app_with, published, source_key, point, clock,
                                       make_user) -> None:
    app = app_with(RATE_LIMIT_ALERTS="3/minute")
    point("GAS-MH-0001", "gas")
    other_key = _second_key(app, clock, make_user)
    for n in range(3):
        assert _post(app, source_key, _alert(clock, n)).status_code in (200, 201)
    throttled = _post(app, source_key, _alert(clock, 3))
    assert throttled.status_code == 429
    seconds = int(throttled.headers["Retry-After"])
    assert 1 <= seconds <= 60
    body = throttled.get_json()
    assert body["code"] == "rate_limited" and body["details"]["retry_after"] == seconds
    assert body["details"]["limit"] == "3 per 1 minute"
    # Another address does not help the throttled key; another key is not held up by it.
    assert _post(app, source_key, _alert(clock, 4), address="10.9.9.9").status_code == 429
    assert _post(app, other_key, _alert(clock, 5)).status_code in (200, 201)


def test_a_bad_key_is_refused_before_it_counts(app_with, source_key) -> None:
    app = app_with(RATE_LIMIT_ALERTS="1/minute")
    for _ in range(3):
        refused = _post(app, "pk_00000000_not-a-key", {})
        assert refused.status_code == 401
    assert _post(app, source_key, {}).status_code == 422
    assert _post(app, source_key, {}).status_code == 429


@pytest.mark.parametrize("requests", [40])
def test_the_default_lets_a_burst_of_batches_through(app_with, published, source_key, point,
                                                     clock, requests: int) -> None:
    app = app_with()
    point("GAS-MH-0001", "gas")
    for n in range(requests):
        batch = {"alerts": [_alert(clock, n * 10 + i) for i in range(10)]}
        response = _post(app, source_key, batch)
        assert response.status_code in (200, 201), (n, response.get_json())
