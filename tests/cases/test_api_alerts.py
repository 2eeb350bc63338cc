"""POST /api/v1/alerts: API keys, per-field refusals that store nothing, idempotent retries,
all-or-nothing batches; and the `flask seed points` / `flask alerts simulate` commands."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Alert, ApiKey, Case, MonitoringPoint, Role, User
from app.services import api_keys

URL = "/api/v1/alerts"


def _counts(app) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(Alert)) or 0,
                db.session.scalar(select(func.count()).select_from(Case)) or 0)


def _alert(clock, **overrides: Any) -> dict[str, Any]:
    alert = {"scenario": "gas", "indicator": "ch4_lel", "point": "GAS-MH-0001", "value": 30.0,
             "observed_at": clock().isoformat()}
    alert.update(overrides)
    return {k: v for k, v in alert.items() if v is not ...}


def _post(client, key: str | None, body: Any = None, **kw: Any) -> Any:
    headers = kw.pop("headers", {})
    if key is not None:
        headers.setdefault("Authorization", f"Bearer {key}")
    if body is not None:
        kw["json"] = body
    return client.post(URL, headers=headers, **kw)


def test_one_alert_is_stored_and_opens_a_case(app, client, published, source_key, point,
                                              clock):
    point("GAS-MH-0001", "gas")
    response = _post(client, source_key, _alert(clock, payload={"battery": 87}))
    assert response.status_code == 201, response.get_json()
    outcome = response.get_json()
    assert outcome["disposition"] == "opened" and outcome["level"] == "yellow"
    assert outcome["case_no"].startswith("RQ-") and outcome["unknown_point"] is False
    assert outcome["replayed"] is False
    assert _counts(app) == (1, 1)
    with app.app_context():
        stored = db.session.get(Alert, outcome["alert_id"])
        assert stored is not None
        assert stored.payload == {"battery": 87} and stored.observed_at == clock()


def test_the_x_api_key_header_works_too(app, client, published, source_key, clock):
    response = _post(client, None, _alert(clock), headers={"X-API-Key": source_key})
    assert response.status_code == 201
    assert response.get_json()["unknown_point"] is True


def test_a_retry_with_the_same_idempotency_key_writes_nothing_new(app, client, published,
                                                                  source_key, clock):
    first = _post(client, source_key, _alert(clock), headers={"Idempotency-Key": "r-1"})
    assert first.status_code == 201
    clock.advance(seconds=30)
    again = _post(client, source_key, _alert(clock, value=60.0),
                  headers={"Idempotency-Key": "r-1"})
    assert again.status_code == 200
    assert again.get_json() == {**first.get_json(), "replayed": True}
    body_key = _post(client, source_key, _alert(clock, idempotency_key="r-1"))
    assert body_key.status_code == 200 and body_key.get_json()["replayed"] is True
    assert _counts(app) == (1, 1)


def test_a_batch_is_stored_in_order(app, client, published, source_key, point, clock):
    point("GAS-MH-0001", "gas")
    body = {"alerts": [_alert(clock, idempotency_key="b-1"),
                       _alert(clock, value=32.0, idempotency_key="b-2"),
                       _alert(clock, value=31.0), _alert(clock, value=34.0),
                       _alert(clock, point="GAS-MH-0002", value=1.0),
                       _alert(clock, scenario="elevator", indicator="entrapment",
                              point="ELV-EL-0001", value=1)]}
    response = _post(client, source_key, body)
    assert response.status_code == 201, response.get_json()
    outcomes = response.get_json()["alerts"]
    assert [o["disposition"] for o in outcomes] == ["opened", "grouped", "grouped", "grouped",
                                                    "below_threshold", "opened"]
    assert len({o["case_no"] for o in outcomes[:4]}) == 1
    assert outcomes[5]["level"] == "red"
    assert _counts(app) == (6, 2)
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == outcomes[0]["case_no"]))
        assert case is not None and case.alert_count == 4 and case.last_value == 34.0
    retry = _post(client, source_key, {"alerts": body["alerts"][:2]})
    assert retry.status_code == 200
    assert [o["replayed"] for o in retry.get_json()["alerts"]] == [True, True]
    assert _counts(app) == (6, 2)


def test_a_batch_of_keyed_repeats_is_stored_set_wise_and_retried_from_one_read(
        app, client, published, source_key, point, clock):
    import sqlalchemy as sa

    point("GAS-MH-0001", "gas")
    opened = _post(client, source_key, _alert(clock, idempotency_key="k-0")).get_json()
    repeats = {"alerts": [_alert(clock, value=30.0 + n / 10, idempotency_key=f"k-{n}")
                          for n in range(1, 41)]}
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        stored = _post(client, source_key, repeats)
        writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
        statements.clear()
        retried = _post(client, source_key, repeats)
        retry_writes = [s for s in statements
                        if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert stored.status_code == 201, stored.get_json()
    outcomes = stored.get_json()["alerts"]
    assert {(o["disposition"], o["case_no"], o["replayed"]) for o in outcomes} == {
        ("grouped", opened["case_no"], False)}
    # 40 alerts: one insert for the alerts, one executemany for the case (plus the API key's
    # last use), not 40 of each. SQLite cannot return ids of a multi-row insert in order, so
    # there SQLAlchemy sends the rows one by one.
    if engine.dialect.name == "postgresql":
        assert len([s for s in writes if "INTO alert" in s]) == 1, writes
        assert len(writes) <= 4, writes
    assert len([s for s in writes if "warning_case" in s]) == 1, writes
    assert retried.status_code == 200
    assert retried.get_json()["alerts"] == [{**o, "replayed": True} for o in outcomes]
    assert not [s for s in retry_writes if "INTO alert" in s or "warning_case" in s]
    assert _counts(app) == (41, 1)
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == opened["case_no"]))
        assert case is not None and case.alert_count == 41 and case.last_value == 34.0


def test_a_key_repeated_within_a_batch_given_to_the_service_is_stored_once(
        app, published, source_key, point, clock):
    from app.services.intake import AlertIn
    from app.services.intake_batches import ingest_many

    point("GAS-MH-0001", "gas")
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        first = ingest_many(key, [AlertIn("gas", "ch4_lel", "GAS-MH-0001", 30.0, clock(),
                                          idempotency_key="m-0")], now=clock())
        twice = ingest_many(key, [
            AlertIn("gas", "ch4_lel", "GAS-MH-0001", 31.0, clock(), idempotency_key="m-1"),
            AlertIn("gas", "ch4_lel", "GAS-MH-0001", 32.0, clock(), idempotency_key="m-1"),
            AlertIn("gas", "ch4_lel", "GAS-MH-0001", 33.0, clock(), idempotency_key="m-0")],
            now=clock())
        db.session.commit()
        assert [(o.disposition, o.replayed) for o in twice] == [
            ("grouped", False), ("grouped", True), ("opened", True)]
        assert twice[1].alert_id == twice[0].alert_id and twice[2].alert_id == first[0].alert_id
    assert _counts(app) == (2, 1)


def test_one_bad_alert_refuses_the_whole_batch(app, client, published, source_key, clock):
    body = {"alerts": [_alert(clock), _alert(clock, value="high"), _alert(clock, level="pink")]}
    response = _post(client, source_key, body)
    assert response.status_code == 422
    details = response.get_json()["details"]
    assert set(details) == {"1", "2"}
    assert "value" in details["1"] and "level" in details["2"]
    assert _counts(app) == (0, 0)


def test_a_batch_refused_by_the_service_rolls_back_what_came_before(app, client, published,
                                                                    source_key, clock):
    body = {"alerts": [_alert(clock), _alert(clock, point="GAS-MH-0009"),
                       _alert(clock, indicator="no_such_indicator")]}
    response = _post(client, source_key, body)
    assert response.status_code == 422
    assert "indicator" in response.get_json()["details"]["2"]
    assert _counts(app) == (0, 0)


def test_a_batch_with_a_scenario_outside_the_key_is_refused_whole(app, client, published,
                                                                   make_user, clock):
    admin = make_user((Role.TECH_ADMIN, "district"))
    with app.app_context():
        issued = api_keys.issue(db.session.get_one(User, admin["id"]), name="gas only",
                                source_type="iot", scenarios=["gas"], now=clock(),
                                known_scenarios={"gas", "elevator"})
        db.session.commit()
    body = {"alerts": [_alert(clock), _alert(clock, scenario="elevator",
                                             indicator="entrapment", value=1)]}
    response = _post(client, issued.secret, body)
    assert response.status_code == 403
    assert response.get_json()["details"] == {"1": {"scenario": ["elevator"]}}
    assert _counts(app) == (0, 0)


def test_batch_limits(app, client, source_key, clock, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_ALERT_BATCH", 2)
    too_many = _post(client, source_key, {"alerts": [_alert(clock)] * 3})
    assert too_many.status_code == 422 and "alerts" in too_many.get_json()["details"]
    empty = _post(client, source_key, {"alerts": []})
    assert empty.status_code == 422 and "alerts" in empty.get_json()["details"]
    same_key = _post(client, source_key, {"alerts": [_alert(clock, idempotency_key="k"),
                                                     _alert(clock, idempotency_key="k")]})
    assert same_key.status_code == 422
    assert "idempotency_key" in same_key.get_json()["details"]["1"]
    header = _post(client, source_key, {"alerts": [_alert(clock)]},
                   headers={"Idempotency-Key": "h"})
    assert header.status_code == 422 and "Idempotency-Key" in header.get_json()["details"]
    assert _counts(app) == (0, 0)


@pytest.mark.parametrize(("field", "value"), [
    ("scenario", "volcano"), ("scenario", 7), ("scenario", ...),
    ("indicator", 12), ("indicator", ""), ("indicator", "ch4 lel"), ("indicator", ...),
    ("point", None), ("point", "P" * 81), ("point", ...),
    ("value", "30"), ("value", True), ("value", [30]), ("value", ...),
    ("observed_at", "2026-07-26T02:00:00"), ("observed_at", "yesterday"),
    ("observed_at", 1785031200), ("observed_at", "+1h"), ("observed_at", "-8d"),
    ("level", "purple"), ("level", 1),
    ("idempotency_key", "k" * 121), ("idempotency_key", 5),
    ("payload", ["not", "an", "object"]), ("payload", {"blob": "x" * 17_000}),
    ("colour", "red"),
])
def test_each_field_refuses_a_wrong_value_and_stores_nothing(app, client, source_key, clock,
                                                             field, value):
    if value == "+1h":
        value = (clock() + timedelta(hours=1)).isoformat()
    elif value == "-8d":
        value = (clock() - timedelta(days=8)).isoformat()
    response = _post(client, source_key, _alert(clock, **{field: value}))
    assert response.status_code == 422, response.get_json()
    error = response.get_json()
    assert error["code"] == "validation_failed" and field in error["details"]
    assert all(isinstance(m, str) for m in error["details"][field])
    assert _counts(app) == (0, 0)


def test_unknown_indicator_is_named(app, client, published, source_key, clock):
    response = _post(client, source_key, _alert(clock, indicator="ch4_ppm"))
    assert response.status_code == 422
    assert "ch4_lel" in response.get_json()["details"]["indicator"][0]
    assert _counts(app) == (0, 0)


@pytest.mark.parametrize(("raw", "status", "where"), [
    (b'{"scenario": "gas", "value": NaN}', 400, "body"),  # not JSON at all
    (b'{"scenario": "gas", "value": 1e999}', 422, "value"),  # JSON, but no finite number
])
def test_non_finite_values_are_refused(app, client, source_key, clock, raw, status, where):
    body = raw.replace(b"}", b', "indicator": "ch4_lel", "point": "P", "observed_at": "'
                       + clock().isoformat().encode() + b'"}')
    response = _post(client, source_key, data=body, content_type="application/json")
    assert response.status_code == status and where in response.get_json()["details"]
    assert _counts(app) == (0, 0)


@pytest.mark.parametrize(("data", "content_type", "code"), [
    (b'{"scenario": "gas",', "application/json", "bad_json"),
    (b"\xff\xfe\x00", "application/json", "bad_json"),
    (b"[" * 100_000, "application/json", "bad_json"),
    (b"scenario=gas&value=30", "application/x-www-form-urlencoded", "unsupported_content_type"),
    (b'{"scenario": "gas"}', "text/plain", "unsupported_content_type"),
])
def test_bad_json_or_content_type_is_a_400(app, client, source_key, data, content_type, code):
    response = _post(client, source_key, data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json()["code"] == code
    assert _counts(app) == (0, 0)


def test_a_body_that_is_not_an_object_is_a_400(app, client, source_key):
    response = _post(client, source_key, [1, 2])
    assert response.status_code == 400 and response.get_json()["code"] == "bad_json"


def test_too_large_a_body_is_a_413(app, client, source_key):
    big = b'{"alerts": [' + b" " * (5 * 1024 * 1024) + b"]}"
    response = _post(client, source_key, data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["code"] == "http_413"
    assert _counts(app) == (0, 0)


def test_idempotency_header_and_body_must_agree(app, client, source_key, clock):
    response = _post(client, source_key, _alert(clock, idempotency_key="a"),
                     headers={"Idempotency-Key": "b"})
    assert response.status_code == 422 and "idempotency_key" in response.get_json()["details"]


@pytest.mark.parametrize(("header", "code"), [
    ({}, "api_key_missing"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "api_key_malformed"),
    ({"Authorization": "Bearer pk_deadbeef_wrong"}, "api_key_invalid"),
    ({"X-API-Key": "not-a-key"}, "api_key_malformed"),
    ({"X-API-Key": "pk_dead\x00beef_wrong"}, "api_key_malformed"),
    ({"X-API-Key": "pk_" + "d" * 5000 + "_wrong"}, "api_key_malformed"),
])
def test_missing_or_bad_keys_are_a_401(app, client, published, source_key, clock, header,
                                       code):
    response = _post(client, None, _alert(clock), headers=header)
    assert response.status_code == 401
    assert response.get_json()["code"] == code
    assert _counts(app) == (0, 0)


def test_a_revoked_key_is_a_401(app, client, published, source_key, clock):
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        assert key is not None
        api_keys.revoke(db.session.get_one(User, key.created_by_id), key.id, now=clock())
        db.session.commit()
    response = _post(client, source_key, _alert(clock))
    assert response.status_code == 401 and response.get_json()["code"] == "api_key_revoked"
    assert _counts(app) == (0, 0)


def test_a_key_only_reports_for_its_scenarios(app, client, published, make_user, clock):
    admin = make_user((Role.TECH_ADMIN, "district"))
    with app.app_context():
        issued = api_keys.issue(db.session.get_one(User, admin["id"]), name="gas only",
                                source_type="iot", scenarios=["gas"], now=clock(),
                                known_scenarios={"gas", "elevator"})
        db.session.commit()
    response = _post(client, issued.secret, _alert(clock, scenario="elevator",
                                                   indicator="entrapment", value=1))
    assert response.status_code == 403
    error = response.get_json()
    assert error["code"] == "scenario_not_allowed" and "scenario" in error["details"]
    assert _counts(app) == (0, 0)


def test_no_published_handbook_is_a_409(app, client, source_key, clock):
    response = _post(client, source_key, _alert(clock))
    assert response.status_code == 409
    error = response.get_json()
    assert error["code"] == "no_published_handbook" and "scenario" in error["details"]
    assert _counts(app) == (0, 0)


# ---------------------------------------------------------------- the demo commands

def test_seed_points_is_realistic_and_idempotent(app, dbconn):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed", "points"])
    assert first.exit_code == 0, first.output
    with app.app_context():
        points = db.session.scalars(select(MonitoringPoint)).all()
        assert len(points) > 1000
        assert {p.scenario for p in points} == set(handbooks_scenarios())
        assert len({p.node_id for p in points}) == 36
        assert all("演示" in p.name for p in points)
        assert all(30.85 <= (p.lat or 0) <= 31.40 and 121.45 <= (p.lon or 0) <= 121.95
                   for p in points)
        assert db.session.scalar(select(MonitoringPoint.code).where(
            MonitoringPoint.code == "GAS-MH-0001")) is not None
    again = runner.invoke(args=["seed", "points"])
    assert again.exit_code == 0 and "0 created" in again.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MonitoringPoint)) \
            == len(points)


def handbooks_scenarios() -> list[str]:
    from app.services.handbook_data import platform_scenarios

    return list(platform_scenarios())


def test_simulate_feeds_the_intake_service(app, dbconn, published, make_user):
    make_user((Role.TECH_ADMIN, "district"))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed", "points"]).exit_code == 0
    result = runner.invoke(args=["alerts", "simulate", "--scenario", "gas", "--scenario",
                                 "elevator", "--town", "town.02", "--rate", "0", "--count",
                                 "20", "--repeat-share", "0.3", "--normal-share", "0.1",
                                 "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "demo API key created" in result.output and "pk_" in result.output
    assert "sent 20 alerts: opened" in result.output
    with app.app_context():
        alerts = db.session.scalars(select(Alert)).all()
        assert len(alerts) == 20
        assert {a.scenario for a in alerts} <= {"gas", "elevator"}
        assert {a.disposition for a in alerts} & {"grouped", "upgraded", "back_to_normal"}
        opened = db.session.scalars(select(Case)).all()
        assert opened and all(c.node.code == "town.02" for c in opened)
        keys = db.session.scalar(select(func.count()).select_from(ApiKey))
    again = runner.invoke(args=["alerts", "simulate", "--scenario", "gas", "--town", "town.02",
                                "--level", "red", "--rate", "0", "--count", "3"])
    assert again.exit_code == 0, again.output
    assert "demo API key created" not in again.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == keys
        assert db.session.scalar(select(func.count()).select_from(Alert)) == 23


def test_simulate_explains_what_is_missing(app, dbconn, published):
    runner = app.test_cli_runner()
    no_points = runner.invoke(args=["alerts", "simulate", "--scenario", "gas", "--rate", "0"])
    assert no_points.exit_code != 0 and "flask seed points" in no_points.output
    unknown = runner.invoke(args=["alerts", "simulate", "--scenario", "volcano"])
    assert unknown.exit_code != 0 and "volcano" in unknown.output
    assert _counts(app) == (0, 0)


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:01+00:01", "9999-12-31T23:59:59-00:01"])
def test_a_time_at_the_end_of_the_calendar_is_a_field_error(app, client, source_key, clock,
                                                           moment):
    response = _post(client, source_key, _alert(clock, observed_at=moment))
    assert response.status_code == 422 and "observed_at" in response.get_json()["details"]
    assert _counts(app) == (0, 0)
