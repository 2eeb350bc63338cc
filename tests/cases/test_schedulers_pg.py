"""Two scheduler processes on one PostgreSQL database at once: every due timer fires exactly
once, periodic jobs run in one of them at a time, and every case's history stays verifiable.

Real processes (`flask scheduler run`), real commits, the real clock: the cases are opened a
day in the past, so their first timers are due when the schedulers start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.jobs import claim_job
from app.models import ApiKey, Case, CaseEvent, MonitoringPoint, Role, RoleAssignment, User
from app.services import api_keys, org
from app.services.intake import AlertIn
from app.services.intake_batches import ingest_many
from app.services.verification import verify_case
from cases_fixtures import fresh_database, publish_all

pytestmark = pytest.mark.commits

BASE_URL = os.environ.get("TEST_DATABASE_URL")
DB_NAME = "ops_schedulers_test"
ROOT = Path(__file__).resolve().parents[2]
CASES = 24


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not BASE_URL:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
    with fresh_database(BASE_URL, DB_NAME) as url:
        yield url


def _open_cases_a_day_ago(url: str) -> None:
    opened = datetime.now(UTC) - timedelta(days=1)
    app = create_app(DATABASE_URL=url, SECRET_KEY="scheduler-secret-0123456789abcdef",
                     clock=lambda: opened)
    with app.app_context():
        upgrade()
        org.load_org()
        publish_all(opened)
        for n in range(CASES):
            db.session.add(MonitoringPoint(code=f"SC-{n}", name=f"测点{n}", scenario="gas",
                                           node=org.node_by_code(f"town.{n % 36 + 1:02d}")))
        tech = User(username="sched.tech", display_name="技术", password_hash="x",
                    home_node=org.node_by_code("district"))
        tech.assignments = [RoleAssignment(role=Role.TECH_ADMIN,
                                           node=org.node_by_code("district"))]
        db.session.add(tech)
        db.session.flush()
        api_keys.issue(tech, name="iot", source_type="iot", scenarios=["gas"], now=opened,
                       known_scenarios={"gas"})
        key = db.session.scalar(select(ApiKey))
        assert key is not None
        ingest_many(key, [AlertIn("gas", "ch4_lel", f"SC-{n}", 30.0, opened)
                          for n in range(CASES)], now=opened)
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Case).where(
            Case.next_timer_at < datetime.now(UTC))) == CASES
        db.session.remove()
        db.engine.dispose()


def _scheduler(url: str, log: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "TIMER_POLL_SECONDS": "0.1",
           "SECRET_KEY": "scheduler-secret-0123456789abcdef"}
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"],
                            cwd=ROOT, env=env, stdout=log, stderr=log)


def test_two_schedulers_fire_each_due_timer_once(pg_url: str) -> None:
    _open_cases_a_day_ago(pg_url)
    logs = [tempfile.TemporaryFile() for _ in range(2)]
    processes = [_scheduler(pg_url, log) for log in logs]
    app = create_app(DATABASE_URL=pg_url, SECRET_KEY="scheduler-secret-0123456789abcdef")
    try:
        with app.app_context():
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                due = db.session.scalar(select(func.count()).select_from(Case).where(
                    Case.status == "open", Case.next_timer_at < datetime.now(UTC)))
                db.session.rollback()
                if due == 0:
                    break
                assert all(p.poll() is None for p in processes), "a scheduler died"
                time.sleep(0.2)
            time.sleep(1.0)  # a few more polls: nothing may fire a second time
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    out = []
    for log in logs:
        log.seek(0)
        out.append(log.read().decode("utf-8", "replace"))
        log.close()
    assert [p.returncode for p in processes] == [0, 0], out
    assert all("scheduler stopped" in text for text in out), out
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Case).where(
            Case.status == "open", Case.next_timer_at < datetime.now(UTC))) == 0, out
        firings = dict(db.session.execute(
            select(CaseEvent.case_id, func.count()).where(
                CaseEvent.kind == "input", CaseEvent.data["kind"].as_string() == "timers")
            .group_by(CaseEvent.case_id)).all())
        case_ids = db.session.scalars(select(Case.id)).all()
        assert len(case_ids) == CASES
        # Each case's due timers fired in exactly one step, by one of the two schedulers.
        assert {firings.get(case_id, 0) for case_id in case_ids} == {1}, firings
        for case in db.session.scalars(select(Case)):
            verdict = verify_case(case)
            assert verdict.ok, (case.case_no, verdict)
        db.session.remove()
        db.engine.dispose()


def test_a_periodic_job_runs_in_one_scheduler_at_a_time(pg_url: str) -> None:
    app = create_app(DATABASE_URL=pg_url, SECRET_KEY="scheduler-secret-0123456789abcdef")
    answers: list[bool] = []

    def other_scheduler() -> None:
        with app.app_context():
            answers.append(claim_job("quality"))
            db.session.rollback()

    with app.app_context():
        assert claim_job("quality") is True
        assert claim_job("staffing") is True  # another job is not held up
        thread = threading.Thread(target=other_scheduler)
        thread.start()
        thread.join()
        db.session.commit()  # the run ends: the lock goes with the transaction
        thread = threading.Thread(target=other_scheduler)
        thread.start()
        thread.join()
        assert answers == [False, True]
        db.session.remove()
        db.engine.dispose()
