"""Repeats into open cases through MQTT beside the HTTP batch path, measured in one run.

Run from the repository root with Mosquitto on 127.0.0.1:1883:
    python benchmarks/mqtt.py                      # SQLite file in a temporary folder
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python benchmarks/mqtt.py
(on PostgreSQL a database `ops_bench_mqtt` is created and dropped). The consumer lets the
broker hand over up to MQTT_RECEIVE_MAXIMUM (65,535) messages unacknowledged, so Mosquitto's
`max_queued_messages` (1,000 by default) does not drop any of the 10,000 sent at once.

1. HTTP: POST /api/v1/alerts with batches of 100 repeats (schema, API key, intake, commit).
2. MQTT, one alert per message: published at QoS 1, consumed by the real consumer (schema,
   derived idempotency key, intake, commit, then acknowledgement). Target >= 2,000/s.
3. MQTT, 100 alerts per message ({"alerts": [...]}, as on the HTTP API).
Each rate is from the first message sent to the last alert committed (as the consumer reports
its committed batches); the alert table is counted afterwards: none lost, none doubled.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from app import create_app  # noqa: E402
from app.config import _database_url  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Alert, DeadLetter, MonitoringPoint, User  # noqa: E402
from app.mqtt import Consumer  # noqa: E402
from app.services import api_keys, demo, org  # noqa: E402
from app.services.intake import AlertIn, ingest  # noqa: E402

DB_NAME = "ops_bench_mqtt"
POINTS = 100
spawn = multiprocessing.get_context("spawn")
REPEATS = int(os.environ.get("BENCH_REPEATS", "10000"))


def _database() -> tuple[str, sa.Engine | None]:
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", None
    admin = sa.create_engine(_database_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {DB_NAME}"))
    url = sa.make_url(_database_url(base)).set(database=DB_NAME)
    return url.render_as_string(hide_password=False), admin


def _alert(n: int, at: datetime) -> dict[str, object]:
    return {"scenario": "gas", "indicator": "ch4_lel", "point": f"B-{n % POINTS:05d}",
            "value": 31.0, "observed_at": (at + timedelta(microseconds=n)).isoformat()}


def _publish(client_id: str, topic: str, bodies: list[str], ready: Any, go: Any) -> None:
    """A device fleet in a process of its own: connect, wait for the start, send every body
    at QoS 1 and wait for the broker's acknowledgements."""
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                            protocol=mqtt.MQTTv5)
    publisher.max_inflight_messages_set(1000)
    publisher.max_queued_messages_set(0)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    ready.set()
    go.wait()
    infos = [publisher.publish(topic, body, qos=1) for body in bodies]
    for info in infos:
        info.wait_for_publish(60)
    publisher.disconnect()
    publisher.loop_stop()


def _stored(app: object) -> int:
    with app.app_context():  # type: ignore[attr-defined]
        try:
            return int(db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) or 0)
        finally:
            db.session.remove()


def main() -> None:
    url, admin = _database()
    stop = threading.Event()
    run = uuid.uuid4().hex[:8]
    app = create_app(DATABASE_URL=url, SECRET_KEY="bench-secret-0123456789abcdef",
                     RATE_LIMIT_ALERTS="1000000/minute", MQTT_TOPIC_ROOT=f"bench{run}",
                     MQTT_CLIENT_ID=f"bench-{run}")
    try:
        with app.app_context():
            upgrade()
            org.load_org()
            demo.load_demo_accounts(now=datetime.now(UTC))
            demo.publish_demo_handbooks(now=datetime.now(UTC))
            actor = db.session.scalar(sa.select(User).where(User.username == "sysadmin"))
            issued = api_keys.issue(actor, name="bench", source_type="iot",  # type: ignore
                                    scenarios=["gas"], now=datetime.now(UTC),
                                    known_scenarios={"gas"})
            town = org.node_by_code("town.02")
            db.session.add_all([MonitoringPoint(code=f"B-{i:05d}", name=f"测点{i}",
                                                scenario="gas", node=town)
                                for i in range(POINTS)])
            db.session.commit()
            for i in range(POINTS):  # the open cases the repeats group into
                ingest(issued.key, AlertIn("gas", "ch4_lel", f"B-{i:05d}", 30.0,
                                           datetime.now(UTC)), now=datetime.now(UTC))
                db.session.commit()
            secret, prefix = issued.secret, issued.key.prefix
            db.session.remove()

        # 1. HTTP batch path.
        client = app.test_client()
        now = datetime.now(UTC)
        before = _stored(app)
        start = time.perf_counter()
        for b in range(0, REPEATS, 100):
            answer = client.post("/api/v1/alerts", json={"alerts": [
                _alert(n, now) for n in range(b, min(b + 100, REPEATS))]},
                headers={"Authorization": f"Bearer {secret}"})
            assert answer.status_code == 201, answer.get_data(as_text=True)
        http_rate = REPEATS / (time.perf_counter() - start)
        assert _stored(app) - before == REPEATS

        # 2 and 3. MQTT through the real consumer, on its own thread.
        # The consumer reports each committed batch: the clock stops at the last one without
        # polling the alert table (a count over it every few ms loads the database measured).
        taken = threading.Condition()
        stored = [0]

        def on_batch(counts: dict[str, int]) -> None:
            with taken:
                stored[0] += counts["alerts"]
                taken.notify_all()

        consumer = Consumer(app, on_batch=on_batch)
        worker = threading.Thread(target=consumer.run, kwargs={"until": stop.is_set})
        worker.start()
        while not consumer.connected.is_set():
            time.sleep(0.05)
        topic = f"{app.config['MQTT_TOPIC_ROOT']}/{prefix}/alerts"

        def through_mqtt(per_message: int) -> float:
            # The devices are processes of their own: the publisher runs in a child process,
            # so that building and sending messages does not share the consumer's interpreter.
            now = datetime.now(UTC) + timedelta(seconds=per_message)
            bodies = []
            for b in range(0, REPEATS, per_message):
                alerts = [_alert(n, now) for n in range(b, min(b + per_message, REPEATS))]
                bodies.append(json.dumps(alerts[0] if per_message == 1 else {"alerts": alerts}))
            before, counted = _stored(app), stored[0]
            ready, go = spawn.Event(), spawn.Event()
            sender = spawn.Process(target=_publish,
                                   args=(f"bench-pub-{run}-{per_message}", topic, bodies,
                                         ready, go))
            sender.start()
            if not ready.wait(30):
                raise SystemExit("the publisher did not connect to the broker")
            start = time.perf_counter()
            go.set()
            deadline = time.monotonic() + 120
            with taken:
                while stored[0] - counted < REPEATS:
                    if time.monotonic() > deadline:
                        with app.app_context():
                            dead = db.session.scalars(sa.select(DeadLetter).limit(3)).all()
                            raise SystemExit(f"MQTT intake did not finish: "
                                             f"{[(d.reason, d.detail[:300]) for d in dead]}")
                    taken.wait(0.5)
            rate = REPEATS / (time.perf_counter() - start)
            sender.join(30)
            assert _stored(app) - before == REPEATS  # none lost, none doubled
            return rate

        single_rate = through_mqtt(1)
        batch_rate = through_mqtt(100)
        stop.set()
        worker.join(30)
        forget = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=app.config["MQTT_CLIENT_ID"],
                             protocol=mqtt.MQTTv5)
        forget.connect("127.0.0.1", 1883, clean_start=True)
        forget.disconnect()

        database = "PostgreSQL" if admin is not None else "SQLite"
        print(f"repeats into {POINTS} open gas cases, {REPEATS} each way, {database}")
        print(f"HTTP  batches of 100      : {http_rate:8.0f} alerts/s  (1.00)")
        print(f"MQTT  one alert a message : {single_rate:8.0f} alerts/s  "
              f"({single_rate / http_rate:.2f} of HTTP; target >= 2,000/s: "
              f"{'met' if single_rate >= 2000 else 'NOT met'})")
        print(f"MQTT  100 alerts a message: {batch_rate:8.0f} alerts/s  "
              f"({batch_rate / http_rate:.2f} of HTTP)")
    finally:
        stop.set()  # the consumer thread ends before its database goes
        time.sleep(1)
        with app.app_context():
            db.engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
            admin.dispose()


if __name__ == "__main__":
    main()
