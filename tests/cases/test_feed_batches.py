"""What a feed's batch stores: the quick loader accepts only what the alert schema accepts and
gives the same alert, and the set-wise store of repeats keeps every value, its order and its
idempotency key (registered for uniqueness across months on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from marshmallow import ValidationError

from app.api.alert_schemas import AlertSchema, quick_alert
from app.extensions import db
from app.models import Alert, ApiKey, Case
from app.services import feed_intake
from app.services.intake import AlertIn


def _shapes(now: Any) -> list[Any]:
    good = {"scenario": "gas", "indicator": "ch4_lel", "point": "GAS-MH-0001", "value": 31.5,
            "observed_at": now.isoformat()}
    changed: list[dict[str, Any]] = [
        {}, {"value": 31}, {"value": 2 ** 60}, {"value": True}, {"value": "31"},
        {"value": float("nan")}, {"value": float("inf")}, {"value": None},
        {"scenario": "nope"}, {"scenario": 3}, {"indicator": ""}, {"indicator": "ch4 lel"},
        {"indicator": "x" * 61}, {"point": " "}, {"point": "P\t1"}, {"point": "p" * 81},
        {"observed_at": "2026-07-26T10:00:00"}, {"observed_at": "yesterday"},
        {"observed_at": (now + timedelta(minutes=6)).isoformat()},
        {"observed_at": (now - timedelta(days=8)).isoformat()},
        {"observed_at": f" {(now - timedelta(minutes=1)).isoformat()} "},
        {"observed_at": now.astimezone().isoformat().replace("+00:00", "Z")},
        {"observed_at": 1785000000}, {"level": "red"}, {"level": "purple"}, {"level": None},
        {"idempotency_key": "k 1"}, {"idempotency_key": ""}, {"idempotency_key": "k" * 121},
        {"idempotency_key": None}, {"payload": {"raw": [1, 2], "单位": "%LEL"}},
        {"payload": {"big": "x" * 17000}}, {"payload": [1]}, {"payload": None},
        {"extra": 1},
    ]
    shapes: list[Any] = [good, [good], "text", None, {k: v for k, v in good.items()
                                                         if k != "value"}]
    shapes += [{**good, **change} for change in changed]
    return shapes


def test_quick_loader_agrees_with_the_schema(ctx: Flask, clock: Any) -> None:
    schema = AlertSchema()
    accepted = 0
    for data in _shapes(clock()):
        try:
            expected: AlertIn | None = schema.load(data)
        except ValidationError:
            expected = None
        quick = quick_alert(data)
        # Quick takes the ordinary shapes only, and never something the schema refuses.
        assert quick is None or quick == expected, data
        if quick is not None:
            accepted += 1
            assert type(quick.value) is float
    assert accepted >= 8  # the ordinary shapes do take the quick path


@pytest.fixture
def repeats_case(published: None, point: Callable[..., str],
                 send: Callable[..., dict[str, Any]]) -> str:
    point("GAS-MH-0001", "gas")
    return str(send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"])


def test_repeats_are_stored_with_their_values_in_order(ctx: Flask, clock: Any,
                                                        repeats_case: str) -> None:
    key = db.session.scalar(sa.select(ApiKey))
    assert key is not None
    now = clock()
    batch = [AlertIn("gas", "ch4_lel", "GAS-MH-0001", 30.0 + n / 8,
                     now - timedelta(seconds=40 - n), idempotency_key=f"r-{n}",
                     payload={"n": n, "名称": "燃气", "z": 1, "a": [n]} if n % 2 else None)
             for n in range(40)]
    outcomes = feed_intake.take_in(key, batch, now=now)
    db.session.commit()
    assert [o.disposition for o in outcomes] == ["grouped"] * 40
    for alert, outcome in zip(batch, outcomes, strict=True):
        row = db.session.get(Alert, outcome.alert_id)
        assert row is not None
        assert (row.value, row.observed_at, row.idempotency_key, row.received_at) == (
            alert.value, alert.observed_at, alert.idempotency_key, now)
        assert row.payload == (alert.payload or {})
        assert outcome.case_no == repeats_case
    if db.session.get_bind().dialect.name == "postgresql":
        # The payload's text is kept as written, keys in the source's order.
        text = db.session.scalar(sa.text("SELECT payload::text FROM alert WHERE id = :i"),
                                 {"i": outcomes[1].alert_id})
        assert text == '{"n": 1, "名称": "燃气", "z": 1, "a": [1]}'
        # Each key is registered once for uniqueness across months.
        registered = db.session.scalar(sa.text(
            "SELECT count(*) FROM alert_idempotency_key WHERE api_key_id = :k "
            "AND idempotency_key LIKE 'r-%'"), {"k": key.id})
        assert registered == 40
    case = db.session.scalar(sa.select(Case).where(Case.case_no == repeats_case))
    assert case is not None and case.alert_count == 41 and case.last_value == batch[-1].value

    # Delivered again (half of it) with new ones: the old are replays, stored once.
    again = batch[20:] + [AlertIn("gas", "ch4_lel", "GAS-MH-0001", 31.0, now,
                                  idempotency_key="r-new")]
    second = feed_intake.take_in(key, again, now=now)
    db.session.commit()
    assert [o.replayed for o in second] == [True] * 20 + [False]
    assert [o.alert_id for o in second[:20]] == [o.alert_id for o in outcomes[20:]]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 42


def test_a_heartbeat_outside_the_keys_towns_becomes_a_dead_letter(
        ctx: Flask, clock: Any, point: Callable[..., str],
        make_user: Callable[..., Any]) -> None:
    from app.models import DeadLetter, FeedTally, Role, User
    from app.mqtt import Message, take_in
    from app.services import api_keys

    point("GAS-HT-1", "gas", town="town.02")
    point("GAS-HT-2", "gas", town="town.22")
    admin = db.session.get(User, make_user((Role.TECH_ADMIN, "district"))["id"])
    assert admin is not None
    key = api_keys.issue(admin, name="town02", source_type="iot", scenarios=["gas"],
                         now=clock(), known_scenarios={"gas"}, node_codes=["town.02"]).key
    topic = f"root/{key.prefix}/heartbeat"
    counts = take_in([Message(1, 1, topic, b'{"points": ["GAS-HT-1"]}', 0.0),
                      Message(2, 1, topic, b'{"points": ["GAS-HT-2"]}', 0.0)],
                     root="root", now=clock())
    assert counts == {"alerts": 0, "heartbeats": 1, "dead": 1}
    dead = db.session.scalar(sa.select(DeadLetter))
    assert dead is not None and dead.reason == "point_not_allowed" and "GAS-HT-2" in dead.detail
    assert list(db.session.scalars(sa.select(FeedTally.point_code))) == ["GAS-HT-1"]
