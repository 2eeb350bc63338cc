"""kill -9 of the MQTT consumer process mid-stream loses nothing and doubles nothing: the
broker keeps the persistent session and delivers again what was not acknowledged, and the
idempotency keys store each message once (a real consumer process, a real broker, a SQLite
file both processes write and read)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select
from test_mqtt_intake import _broker_up, forget_session, publish, publisher

from app import create_app
from app.extensions import db
from app.models import Alert, Case, Heartbeat, MonitoringPoint, Role, RoleAssignment, User
from app.services import api_keys, handbooks, org
from cases_fixtures import publish_all

pytestmark = [pytest.mark.commits,
              pytest.mark.skipif(not _broker_up(), reason="needs Mosquitto on 127.0.0.1:1883")]

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 400


def _prepare(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    gas = [b for b in handbooks.collect_bundles() if b.key == "gas"]
    monkeypatch.setattr(handbooks, "collect_bundles", lambda root=None: list(gas))
    app = create_app(DATABASE_URL=url, SECRET_KEY="mqtt-kill-secret-0123456789")
    with app.app_context():
        upgrade()
        org.load_org()
        now = datetime.now(UTC)
        publish_all(now)
        for n in range(20):
            db.session.add(MonitoringPoint(code=f"KILL-{n}", name=f"测点{n}", scenario="gas",
                                           node=org.node_by_code(f"town.{n % 36 + 1:02d}"),
                                           lat=31.2, lon=121.5))
        admin = User(username="kill.tech", display_name="技术", password_hash="x",
                     home_node=org.node_by_code("district"))
        admin.assignments = [RoleAssignment(role=Role.TECH_ADMIN,
                                            node=org.node_by_code("district"))]
        db.session.add(admin)
        db.session.flush()
        prefix = api_keys.issue(admin, name="mqtt", source_type="iot", scenarios=["gas"],
                                now=now, known_scenarios={"gas"}).key.prefix
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return prefix


def _count(url: str, what: Any) -> Any:
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("sqlite:///", "sqlite:///", 1))
    try:
        with engine.connect() as conn:
            return conn.execute(what).scalar()
    finally:
        engine.dispose()


def test_kill_9_mid_stream_loses_and_doubles_nothing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    prefix = _prepare(url, monkeypatch)
    run = uuid.uuid4().hex[:10]
    root, client_id = f"k{run}", f"ops-kill-{run}"
    env = {**os.environ, "DATABASE_URL": url, "MQTT_TOPIC_ROOT": root,
           "MQTT_CLIENT_ID": client_id, "MQTT_BATCH": "50",
           "SECRET_KEY": "mqtt-kill-secret-0123456789"}
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "intake", "mqtt"]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def stored() -> int:
        return int(_count(url, select(func.count()).select_from(Alert)))

    consumer = start()
    try:
        deadline = time.monotonic() + 30
        while _count(url, select(func.count()).select_from(Heartbeat)
                     .where(Heartbeat.name == "mqtt")) == 0:
            assert time.monotonic() < deadline, "the consumer never subscribed"
            time.sleep(0.1)
        pub = publisher()
        base = datetime.now(UTC)
        for n in range(MESSAGES):
            publish(pub, f"{root}/{prefix}/alerts", {
                "scenario": "gas", "indicator": "ch4_lel", "point": f"KILL-{n % 20}",
                "value": 30.0 + (n % 7) / 10, "observed_at":
                    (base + timedelta(milliseconds=n)).isoformat()})
            if n == MESSAGES // 4:
                while stored() == 0:
                    assert time.monotonic() < deadline + 30, "nothing stored"
                    time.sleep(0.01)
                os.kill(consumer.pid, signal.SIGKILL)  # mid-stream: some stored, some not
                consumer.wait(10)
                killed_at = stored()
                consumer = start()
        pub.disconnect()
        pub.loop_stop()
        deadline = time.monotonic() + 60
        while stored() < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # anything redelivered after the last one would show now
        assert 0 < killed_at < MESSAGES
        assert stored() == MESSAGES
        distinct = _count(url, select(func.count(func.distinct(Alert.idempotency_key))))
        assert distinct == MESSAGES
        assert _count(url, select(func.sum(Case.alert_count))) == MESSAGES
    finally:
        consumer.send_signal(signal.SIGTERM)
        try:
            consumer.wait(10)
        except subprocess.TimeoutExpired:
            consumer.kill()
        forget_session(client_id)
