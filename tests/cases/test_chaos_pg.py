"""kill -9 of the serving process during batch intake loses nothing, doubles nothing and leaves
no case stuck or unverifiable (PostgreSQL, a real server process, real commits).

Each round sends batches of alerts with idempotency keys while the server is killed at a random
moment; after a restart everything that had no 2xx is sent again. CHAOS_CYCLES sets the number
of kills (3 by default, so the test stays bounded in CI).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import Alert, ApiKey, Case, MonitoringPoint, Role, RoleAssignment, User
from app.services import api_keys, org
from app.services.verification import verify_case
from cases_fixtures import fresh_database, publish_all

pytestmark = pytest.mark.commits

BASE_URL = os.environ.get("TEST_DATABASE_URL")
DB_NAME = "ops_chaos_test"
ROOT = Path(__file__).resolve().parents[2]
CYCLES = int(os.environ.get("CHAOS_CYCLES", "3"))


@pytest.fixture
def chaos_db() -> Iterator[tuple[str, str]]:
    if not BASE_URL:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
    with fresh_database(BASE_URL, DB_NAME) as url:
        app = create_app(DATABASE_URL=url, SECRET_KEY="chaos-secret-0123456789abcdef")
        with app.app_context():
            upgrade()
            org.load_org()
            now = datetime.now(UTC)
            publish_all(now)
            for n in range(40):
                db.session.add(MonitoringPoint(code=f"CH-{n}", name=f"测点{n}",
                                               scenario="flood_typhoon",
                                               node=org.node_by_code(f"town.{n % 36 + 1:02d}"),
                                               lat=31.2, lon=121.5))
            admin_user = User(username="chaos.tech", display_name="技术", password_hash="x",
                              home_node=org.node_by_code("district"))
            admin_user.assignments = [RoleAssignment(role=Role.TECH_ADMIN,
                                                     node=org.node_by_code("district"))]
            db.session.add(admin_user)
            db.session.flush()
            secret = api_keys.issue(admin_user, name="chaos", source_type="iot",
                                    scenarios=["flood_typhoon"], now=now,
                                    known_scenarios={"flood_typhoon"}).secret
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
        yield url, secret


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()

    def start(self) -> None:
        self.port = _free_port()  # a killed server's port may linger
        env = {**os.environ, "DATABASE_URL": self.url,
               "SECRET_KEY": "chaos-secret-0123456789abcdef", "FLASK_APP": "wsgi"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "serve", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/health",
                                            timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        self.log.seek(0)
        raise AssertionError("the server did not start: "
                             + self.log.read().decode("utf-8", "replace")[-2000:])

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None


def _post(port: int, secret: str, batch: list[dict[str, Any]]) -> int:
    body = json.dumps({"alerts": batch}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/alerts", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0  # connection dropped: the server was killed


def test_kill_9_during_batch_intake_loses_and_doubles_nothing(chaos_db: Any) -> None:
    url, secret = chaos_db
    rng = random.Random(7)
    batches: list[list[dict[str, Any]]] = []
    for b in range(12 * CYCLES):
        batch = []
        for k in range(20):
            point = rng.randrange(40)
            batch.append({"scenario": "flood_typhoon", "indicator": "rainfall_1h_mm",
                          "point": f"CH-{point}", "value": rng.choice([36, 55, 90, 130, 0]),
                          "observed_at": datetime.now(UTC).isoformat(),
                          "idempotency_key": f"chaos-{b}-{k}"})
        batches.append(batch)
    server = Server(url)
    pending = list(range(len(batches)))
    for _cycle in range(CYCLES):
        server.start()
        killer = threading.Timer(rng.uniform(0.3, 1.5), server.kill)
        killer.start()
        still: list[int] = []
        for index in pending:
            status = _post(server.port, secret, batches[index])
            if not 200 <= status < 300:
                still.append(index)
        killer.join()
        server.kill()
        pending = still
    server.start()
    try:
        for index in pending:  # resend everything that had no 2xx
            assert 200 <= _post(server.port, secret, batches[index]) < 300
    finally:
        server.kill()
        server.log.close()

    app: Flask = create_app(DATABASE_URL=url, SECRET_KEY="chaos-secret-0123456789abcdef")
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        per_key = dict(db.session.execute(
            select(Alert.idempotency_key, func.count()).where(Alert.api_key_id == key.id)
            .group_by(Alert.idempotency_key)).all())
        sent = {a["idempotency_key"] for batch in batches for a in batch}
        assert set(per_key) == sent  # nothing lost
        assert set(per_key.values()) == {1}  # nothing doubled
        stuck = db.session.scalars(select(Case.case_no).where(
            Case.stuck_since.is_not(None))).all()
        assert stuck == []
        problems = []
        for case in db.session.scalars(select(Case)).all():
            verdict = verify_case(case)
            if not verdict.ok:
                problems.append(verdict.line())
        db.session.remove()
        db.engine.dispose()
        assert problems == []
