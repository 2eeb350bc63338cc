"""MQTT intake against the real broker (Mosquitto at MQTT_HOST:MQTT_PORT): alerts reach the
intake service with the API's idempotency, heartbeats count as feed health, malformed messages
become dead letters, and messages are acknowledged only after commit."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from app.extensions import db
from app.models import Alert, ApiKey, Case, DeadLetter, FeedTally, MonitoringPoint
from app.mqtt import Consumer

HOST, PORT = "127.0.0.1", 1883


def _broker_up() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _broker_up(), reason="needs Mosquitto on 127.0.0.1:1883")


def forget_session(client_id: str) -> None:
    """End a persistent session on the broker (clean start, no expiry)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(HOST, PORT, clean_start=True)
    client.loop_start()
    client.disconnect()
    client.loop_stop()


def publisher() -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:12]}",
                         protocol=mqtt.MQTTv5)
    client.connect(HOST, PORT)
    client.loop_start()
    return client


def publish(client: mqtt.Client, topic: str, body: Any) -> None:
    payload = body if isinstance(body, bytes) else json.dumps(body)
    client.publish(topic, payload, qos=1).wait_for_publish(5)


@pytest.fixture
def mqtt_app(app_with: Callable[..., Flask]) -> Iterator[Flask]:
    run = uuid.uuid4().hex[:10]
    other = app_with(MQTT_TOPIC_ROOT=f"t{run}", MQTT_CLIENT_ID=f"ops-test-{run}",
                     RATE_LIMIT_ALERTS="100000/minute")
    yield other
    forget_session(other.config["MQTT_CLIENT_ID"])


def consume(app: Flask, send: Callable[[], None], *, expect: Callable[[], bool],
            seconds: float = 15) -> Consumer:
    """Run a consumer on this thread (so it writes inside the test's transaction) until
    `expect()` holds; `send` publishes once the consumer has subscribed."""
    consumer = Consumer(app)
    deadline = time.monotonic() + seconds
    sent = False

    def done() -> bool:
        nonlocal sent
        if not sent and consumer.connected.is_set():
            send()
            sent = True
        if time.monotonic() > deadline:
            raise AssertionError("the consumer did not take in what was sent in time")
        if not sent:
            return False
        with app.app_context():
            return expect()

    consumer.run(until=done)
    return consumer


def _alert(point: str, value: float, at: Any, **extra: Any) -> dict[str, Any]:
    return {"scenario": "gas", "indicator": "ch4_lel", "point": point, "value": value,
            "observed_at": at.isoformat(), **extra}


def test_alerts_heartbeats_and_dead_letters(mqtt_app: Flask, published: None, source_key: str,
                                            point: Callable[..., str], clock: Any) -> None:
    point("GAS-MQ-1", "gas")
    with mqtt_app.app_context():
        key = db.session.scalar(select(ApiKey))
        assert key is not None
        prefix = key.prefix
    root = mqtt_app.config["MQTT_TOPIC_ROOT"]
    now = clock()
    pub = publisher()

    def send() -> None:
        publish(pub, f"{root}/{prefix}/alerts", _alert("GAS-MQ-1", 30.0, now))
        publish(pub, f"{root}/{prefix}/alerts", {"alerts": [
            _alert("GAS-MQ-1", 31.0 + n, now + timedelta(seconds=n), idempotency_key=f"b-{n}")
            for n in range(3)]})
        # The same batch again, as a source retrying would: stored once.
        publish(pub, f"{root}/{prefix}/alerts", {"alerts": [
            _alert("GAS-MQ-1", 31.0 + n, now + timedelta(seconds=n), idempotency_key=f"b-{n}")
            for n in range(3)]})
        publish(pub, f"{root}/{prefix}/heartbeat", {"points": ["GAS-MQ-1"]})
        publish(pub, f"{root}/{prefix}/alerts", b"{not json")
        publish(pub, f"{root}/{prefix}/alerts", _alert("GAS-MQ-1", 30.0, now,
                                                       indicator="no_such"))
        publish(pub, f"{root}/{prefix}/alerts", {"scenario": "gas"})
        publish(pub, f"{root}/ffffffff/alerts", _alert("GAS-MQ-1", 30.0, now))

    def arrived() -> bool:
        return db.session.scalar(select(func.count()).select_from(DeadLetter)) == 4

    try:
        consume(mqtt_app, send, expect=arrived)
    finally:
        pub.disconnect()
        pub.loop_stop()
    with mqtt_app.app_context():
        alerts = list(db.session.scalars(select(Alert).order_by(Alert.id)))
        assert len(alerts) == 4
        assert alerts[0].disposition == "opened" and alerts[0].idempotency_key.startswith("mqtt:")
        assert [a.idempotency_key for a in alerts[1:]] == ["b-0", "b-1", "b-2"]
        case = db.session.scalar(select(Case))
        assert case is not None and case.alert_count == 4
        reasons = sorted(d.reason for d in db.session.scalars(select(DeadLetter)))
        assert reasons == ["api_key", "json", "schema", "validation_failed"]
        tally = db.session.scalar(select(FeedTally))
        assert tally is not None and (tally.readings, tally.heartbeats) == (4, 1)
        seen = db.session.scalar(select(MonitoringPoint.last_seen_at).where(
            MonitoringPoint.code == "GAS-MQ-1"))
        assert seen == clock()
