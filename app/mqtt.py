"""The MQTT consumer (`flask intake mqtt`): a process of its own beside the web workers and
the schedulers.

Topics are ROOT/<API key prefix>/alerts (one alert, or {"alerts": [...]} as on the HTTP API)
and ROOT/<API key prefix>/heartbeat ({"points": [...]} or nothing). QoS 1 with a persistent
session (clean start off, a long session expiry) and manual acknowledgement: a message is
acknowledged only after the transaction that stored it (or its dead letter) has committed,
so a consumer killed at any moment loses nothing; the broker then delivers again what was not
acknowledged, and the idempotency key (given, or derived from topic and bytes) stores it once.
"""

from __future__ import annotations

import functools
import json
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

import paho.mqtt.client as mqtt
from flask import Flask, current_app
from marshmallow import ValidationError
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import SQLAlchemyError

from app.api.alert_schemas import AlertBatchSchema, AlertSchema, quick_alert
from app.extensions import db
from app.models import ApiKey, Heartbeat
from app.services import feed_intake
from app.services.errors import DomainError
from app.services.intake import AlertIn

# A week: the broker keeps the session (and the messages for it) while the consumer is away.
SESSION_EXPIRY_S = 7 * 24 * 3600
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
HEARTBEAT_NAME = "mqtt"


@dataclass(frozen=True)
class Message:
    mid: int
    qos: int
    topic: str
    payload: bytes
    arrived: float  # time.monotonic() when the client handed it over


@dataclass
class _Work:
    """The messages of one source in a batch, validated, before they reach the service."""

    key: ApiKey
    alerts: list[tuple[Message, list[AlertIn]]]
    heartbeats: list[tuple[Message, list[str]]]


def subscriptions(root: str) -> list[tuple[str, int]]:
    return [(f"{root}/+/alerts", 1), (f"{root}/+/heartbeat", 1)]


def _decode(message: Message) -> Any:
    if len(message.payload) > MAX_MESSAGE_BYTES:
        raise _Refused("too_large", f"{len(message.payload)} bytes; at most {MAX_MESSAGE_BYTES}")
    try:
        return json.loads(message.payload.decode("utf-8")) if message.payload.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused("json", str(exc)) from None


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@functools.cache
def _schemas() -> tuple[AlertSchema, AlertBatchSchema]:
    """Built once: building a marshmallow schema costs more than loading one alert with it."""
    return AlertSchema(), AlertBatchSchema()


def _quick_batch(data: dict[str, Any]) -> list[AlertIn] | None:
    """{"alerts": [...]} as AlertBatchSchema loads it, when every alert has the ordinary
    shape and the batch breaks none of its rules; None sends it through the schema."""
    items = data["alerts"]
    if len(data) != 1 or type(items) is not list or \
            not 0 < len(items) <= int(current_app.config["MAX_ALERT_BATCH"]):
        return None
    alerts = [quick_alert(item) for item in items]
    keys = [a.idempotency_key for a in alerts if a is not None and a.idempotency_key]
    if len(keys) != len(set(keys)) or not all(alerts):
        return None
    return cast(list[AlertIn], alerts)


def _alerts_of(message: Message, data: Any) -> list[AlertIn]:
    single, batch = _schemas()
    try:
        if isinstance(data, dict) and "alerts" in data:
            alerts = _quick_batch(data) or list(batch.load(data)["alerts"])
        else:
            alerts = [quick_alert(data) or single.load(data)]
    except ValidationError as exc:
        raise _Refused("schema", json.dumps(exc.normalized_messages(), ensure_ascii=False,
                                            default=str)) from None
    return [a if a.idempotency_key else replace(
        a, idempotency_key=feed_intake.derived_key(message.topic, message.payload, n))
        for n, a in enumerate(alerts)]


def take_in(batch: list[Message], *, root: str, now: datetime) -> dict[str, int]:
    """Store one batch of messages in the current transaction (the caller commits): alerts
    through the intake service, heartbeats as feed health, anything else as a dead letter."""
    counts = {"alerts": 0, "heartbeats": 0, "dead": 0}
    work: dict[str, _Work] = {}
    for message in batch:
        parts = message.topic.split("/")
        key = None
        try:
            if len(parts) != 3 or parts[0] != root or parts[2] not in ("alerts", "heartbeat"):
                raise _Refused("topic", f"expected {root}/<key prefix>/alerts or heartbeat")
            key = work[parts[1]].key if parts[1] in work else \
                feed_intake.key_by_prefix(parts[1])
            if key is None:
                raise _Refused("api_key", f"no active API key with prefix {parts[1]!r}")
            entry = work.setdefault(parts[1], _Work(key, [], []))
            data = _decode(message)
            if parts[2] == "heartbeat":
                points = data.get("points", []) if isinstance(data, dict) else None
                if not isinstance(points, list) or not all(
                        isinstance(p, str) and 0 < len(p) <= 80 for p in points):
                    raise _Refused("schema", "a heartbeat is {} or {\"points\": [codes]}")
                entry.heartbeats.append((message, points))
            else:
                entry.alerts.append((message, _alerts_of(message, data)))
        except _Refused as exc:
            feed_intake.dead_letter(topic=message.topic, payload=message.payload,
                                    reason=exc.reason, detail=exc.detail, key=key, now=now)
            counts["dead"] += 1
    for entry in work.values():
        for message, points in entry.heartbeats:
            try:  # refused before anything is written
                feed_intake.heartbeat(entry.key, points, now=now)
            except DomainError as exc:
                feed_intake.dead_letter(topic=message.topic, payload=message.payload,
                                        reason=exc.code, detail=f"{exc.message} {exc.details}",
                                        key=entry.key, now=now)
                counts["dead"] += 1
                continue
            counts["heartbeats"] += 1
        stored, dead = _take_alerts(entry, now)
        counts["alerts"] += stored
        counts["dead"] += dead
    return counts


def _take_alerts(entry: _Work, now: datetime) -> tuple[int, int]:
    """All of a source's alerts at once; when the service refuses that, message by message,
    so one bad message becomes a dead letter and the others are stored."""
    if not entry.alerts:
        return 0, 0
    everything = [a for _, alerts in entry.alerts for a in alerts]
    try:
        with db.session.begin_nested():
            return len(feed_intake.take_in(entry.key, everything, now=now)), 0
    except DomainError:
        pass
    stored = dead = 0
    for message, alerts in entry.alerts:
        try:
            with db.session.begin_nested():
                stored += len(feed_intake.take_in(entry.key, alerts, now=now))
        except DomainError as exc:
            feed_intake.dead_letter(topic=message.topic, payload=message.payload,
                                    reason=exc.code, detail=f"{exc.message} {exc.details}",
                                    key=entry.key, now=now)
            dead += 1
    return stored, dead


class Consumer:
    """Receives on paho's network thread, stores and acknowledges on the caller's thread."""

    def __init__(self, app: Flask, *, on_batch: Callable[[dict[str, int]], None] | None = None
                 ) -> None:
        self.app = app
        self.config = app.config
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.on_batch = on_batch
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.config["MQTT_CLIENT_ID"],
                             protocol=mqtt.MQTTv5, manual_ack=True)
        if self.config["MQTT_USERNAME"]:
            client.username_pw_set(self.config["MQTT_USERNAME"],
                                   self.config["MQTT_PASSWORD"] or None)
        if self.config["MQTT_TLS"]:
            client.tls_set(ca_certs=self.config["MQTT_CA_FILE"] or None,
                           cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=60)  # back-off, doubling
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.app.logger.error("MQTT connection refused: %s", reason)
            return
        # Subscribing again on a resumed session is harmless and covers a lost one.
        client.subscribe(subscriptions(self.config["MQTT_TOPIC_ROOT"]))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected.clear()
        if not self.stopping.is_set():
            self.app.logger.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Message(msg.mid, msg.qos, msg.topic, bytes(msg.payload),
                               time.monotonic()))

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        # Unacknowledged messages wait in the consumer's memory rather than in the broker's
        # queue, which drops QoS 1 messages past its limit (see MQTT_RECEIVE_MAXIMUM).
        properties.ReceiveMaximum = self.config["MQTT_RECEIVE_MAXIMUM"]
        self.client.connect_async(self.config["MQTT_HOST"], self.config["MQTT_PORT"],
                                  keepalive=30, clean_start=False, properties=properties)
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping.set()
        self.client.disconnect()
        self.client.loop_stop()

    def _next_batch(self, wait: float) -> list[Message]:
        try:
            first = self.inbox.get(timeout=wait)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.config["MQTT_BATCH"]
        while len(batch) < limit:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def run(self, *, until: Callable[[], bool] = lambda: False) -> None:
        """Take in batches until stopped; a batch that fails to commit is retried with
        back-off and never acknowledged before it is stored."""
        self.start()
        pending: list[Message] = []
        delay = 0.5
        last_beat = 0.0
        try:
            while not self.stopping.is_set() and not until():
                if not pending:
                    pending = self._next_batch(0.2)
                if self.connected.is_set() and time.monotonic() - last_beat > 5:
                    self._beat(pending)
                    last_beat = time.monotonic()
                if not pending:
                    continue
                try:
                    counts = self._store(pending)
                except (SQLAlchemyError, OSError):
                    self.app.logger.exception("storing %d MQTT messages failed; retrying",
                                              len(pending))
                    time.sleep(delay)
                    delay = min(delay * 2, 30)
                    continue
                delay = 0.5
                for message in pending:
                    self.client.ack(message.mid, message.qos)
                pending = []
                if self.on_batch is not None:
                    self.on_batch(counts)
        finally:
            self.stop()

    def _store(self, batch: list[Message]) -> dict[str, int]:
        with self.app.app_context():
            try:
                counts = take_in(batch, root=self.config["MQTT_TOPIC_ROOT"],
                                 now=self.app.extensions["clock"]())
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise
            finally:
                db.session.remove()
        return counts

    def _beat(self, pending: list[Message]) -> None:
        """The consumer is alive; how far behind it is (the oldest message not yet stored)."""
        lag = time.monotonic() - pending[0].arrived if pending else 0.0
        detail = json.dumps({"lag_s": round(lag, 3), "queued": self.inbox.qsize() + len(pending),
                             "connected": self.connected.is_set()})
        with self.app.app_context():
            try:
                now = self.app.extensions["clock"]()
                row = db.session.get(Heartbeat, HEARTBEAT_NAME)
                if row is None:
                    db.session.add(Heartbeat(name=HEARTBEAT_NAME, beat_at=now, detail=detail))
                else:
                    row.beat_at, row.detail = now, detail
                db.session.commit()
            except SQLAlchemyError:
                db.session.rollback()
                self.app.logger.exception("MQTT consumer heartbeat failed")
            finally:
                db.session.remove()
