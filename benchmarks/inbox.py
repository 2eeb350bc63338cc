"""Inbox latency on PostgreSQL: one responder's 1,000 open tasks among 1,000,000 historic ones.

Run from the repository root (PostgreSQL needed; a database `ops_bench_inbox` is created and
dropped): BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python benchmarks/inbox.py
(TEST_DATABASE_URL is used when BENCH_DATABASE_URL is not set).

The schema comes from the migrations. Cases and tasks are written with COPY: 200,000 closed
cases with five completed tasks each, 1,000 open cases in the responder's town (one ready task
each, a tenth claimed by the responder, some overdue) and 4,000 open cases elsewhere. Then the
`inbox()` service call that the page and the API share is timed over ~200 calls with the
filters people use, and p50 / p95 are printed against the 20 ms target, with the plans of
the statements one call sends (EXPLAIN ANALYZE).
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from bench_db import drop_database, scratch_database  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (  # noqa: E402
    Case,
    CaseTask,
    HandbookVersion,
    NodeKind,
    PlatformNode,
    Role,
    RoleAssignment,
    User,
)
from app.services import handbooks, org  # noqa: E402
from app.services.inbox import InboxFilter, inbox  # noqa: E402

DB_NAME = "ops_bench_inbox"
HISTORIC_CASES = int(os.environ.get("BENCH_HISTORIC_CASES", "200000"))
TASKS_PER_CASE = 5
MINE = int(os.environ.get("BENCH_MY_TASKS", "1000"))
ELSEWHERE = int(os.environ.get("BENCH_OTHER_OPEN", "4000"))
CALLS = int(os.environ.get("BENCH_CALLS", "200"))
TARGET_MS = 20.0
NOW = datetime(2026, 7, 26, 2, 0, tzinfo=UTC)
LEVELS = ("red", "orange", "yellow", "blue")
STEPS = (("Activity_assessment", "研判", "business_admin", "common_assessment"),
         ("Activity_accept", "接单受理", "responder", "common_accept"),
         ("Activity_dispose", "到场处置", "responder", "scenario_gas"),
         ("Activity_cancel_warning", "销警", "responder", "common_closure"),
         ("Activity_verify", "核查", "department_head", "common_closure"))



def _case_row(case_id: int, version: HandbookVersion, town: PlatformNode, scenario: PlatformNode,
              *, open_: bool, opened: datetime, level: str) -> dict[str, Any]:
    return {
        "id": case_id, "case_no": f"RQ-BENCH-{case_id:07d}", "scenario": "gas",
        "item_code": "GAS-CH4-MANHOLE", "item_name": "燃气管线相邻窨井甲烷浓度超限",
        "handbook_version_id": version.id, "process_id": version.process_id,
        "node_id": town.id, "scope_path": town.path, "scenario_path": scenario.path,
        "owner_department_id": scenario.department_id, "point_code": f"GAS-{case_id:07d}",
        "point_id": None, "dedup_key": f"iot|GAS-{case_id:07d}|ch4_lel",
        "status": "open" if open_ else "closed", "outcome": None if open_ else "closed",
        "level": level, "highest_level": level, "loop_level": "small", "unit": "%LEL",
        "first_value": 30.0, "last_value": 30.0, "alert_count": 1, "first_seen": opened,
        "last_seen": opened, "opened_at": opened,
        "accepted_at": None if open_ else opened + timedelta(minutes=5),
        "closed_at": None if open_ else opened + timedelta(hours=3),
        "due_at": opened + timedelta(hours=24), "state": "{}", "state_version": 1,
        "next_timer_at": None, "error": None, "event_seq": 0, "last_event_hash": "0" * 64,
    }


def _task_row(task_id: int, case: dict[str, Any], step: int, *, ready: bool,
              claimed_by: int | None, due: datetime) -> dict[str, Any]:
    element, name, role, process = STEPS[step]
    done = None if ready else case["opened_at"] + timedelta(minutes=10 * (step + 1))
    return {
        "id": task_id, "case_id": case["id"], "task_id": f"bench-{task_id}",
        "process_id": process, "element_id": element, "name": name, "role": role,
        "scope_path": case["scope_path"], "scenario_path": case["scenario_path"],
        "level": case["level"], "status": "ready" if ready else "completed",
        "created_at": case["opened_at"], "due_at": due, "claimed_by_id": claimed_by,
        "claimed_at": case["opened_at"] if claimed_by else None,
        "completed_by_id": None, "completed_at": done,
    }


def plan(towns: list[PlatformNode], mine_town: PlatformNode, user_id: int
         ) -> list[tuple[int, datetime, PlatformNode, str, int | None, int | None, datetime]]:
    """One small tuple per case: (id, opened, town, level, ready step, claimed by, due);
    the rows are made from it on the fly, so a million tasks never sit in memory."""
    rng = random.Random(7)
    cases = []
    for case_id in range(1, HISTORIC_CASES + 1):
        opened = NOW - timedelta(minutes=rng.randint(60, 365 * 24 * 60))
        cases.append((case_id, opened, rng.choice(towns), rng.choice(LEVELS), None, None,
                      opened + timedelta(minutes=30)))
    others = [t for t in towns if t.id != mine_town.id]
    for n in range(MINE + ELSEWHERE):
        town = mine_town if n < MINE else rng.choice(others)
        cases.append((HISTORIC_CASES + n + 1, NOW - timedelta(minutes=rng.randint(1, 600)),
                      town, rng.choice(LEVELS), rng.choice((1, 2, 3)),
                      user_id if n < MINE and n % 10 == 0 else None,
                      NOW + timedelta(minutes=rng.randint(-120, 600))))
    return cases


def case_rows(cases: list[Any], version: HandbookVersion, scenario: PlatformNode
              ) -> Iterator[dict[str, Any]]:
    for case_id, opened, town, level, ready, _claimed, _due in cases:
        yield _case_row(case_id, version, town, scenario, open_=ready is not None,
                        opened=opened, level=level)


def task_rows(cases: list[Any], version: HandbookVersion, scenario: PlatformNode
              ) -> Iterator[dict[str, Any]]:
    task_id = 0
    for case, (_id, _opened, _town, _level, ready, claimed, due) in zip(
            case_rows(cases, version, scenario), cases, strict=True):
        for step in ([ready] if ready is not None else range(TASKS_PER_CASE)):
            task_id += 1
            yield _task_row(task_id, case, step, ready=ready is not None, claimed_by=claimed,
                            due=due)


def copy_rows(table: sa.Table, rows: Iterator[dict[str, Any]]) -> int:
    """COPY rows into `table` through the driver's connection; returns the row count."""
    rows = iter(rows)
    first = next(rows)
    # The columns the rows give; the others take their defaults (columns added later).
    columns = [c.name for c in table.columns if c.name in first]
    rows = itertools.chain([first], rows)
    raw = db.engine.raw_connection()
    count = 0
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
                count += 1
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                       f"(SELECT max(id) FROM {table.name}))")
        cursor.execute(f"ANALYZE {table.name}")
        raw.commit()
    finally:
        raw.close()
    return count


def explain_inbox(user_id: int) -> list[tuple[str, list[str]]]:
    """Each statement one default inbox() call sends, with its EXPLAIN ANALYZE plan."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    db.session.remove()
    reader = db.session.get(User, user_id)
    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        inbox(reader, InboxFilter(), now=NOW, page=1, per_page=20)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    db.session.remove()
    plans = []
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in seen:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
            plans.append((statement, [row[0] for row in cursor.fetchall()]))
        raw.rollback()
    finally:
        raw.close()
    return plans


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not base or not base.startswith("postgres"):
        print("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL URL")
        return 2
    admin, url = scratch_database(base, DB_NAME)
    app = create_app(DATABASE_URL=url, SECRET_KEY="bench-secret-key-0123456789",
                     clock=lambda: NOW)
    try:
        with app.app_context():
            started = time.perf_counter()
            upgrade()
            org.load_org()
            handbooks.deploy(author=None, now=NOW)
            version = db.session.scalar(sa.select(HandbookVersion).where(
                HandbookVersion.handbook_key == "gas"))
            assert version is not None
            towns = list(db.session.scalars(sa.select(PlatformNode).where(
                PlatformNode.kind == NodeKind.TOWN)))
            scenario = org.node_by_code("scenario.gas")
            mine_town = org.node_by_code("town.02")
            user = User(username="bench.responder", display_name="基准处置", password_hash="x",
                        home_node=mine_town, password_changed_at=NOW)
            user.assignments = [RoleAssignment(role=Role.RESPONDER, node=mine_town)]
            db.session.add(user)
            db.session.commit()
            user_id = user.id
            print(f"schema and organisation: {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            cases = plan(towns, mine_town, user_id)
            n_cases = copy_rows(Case.__table__,  # type: ignore[arg-type]
                                case_rows(cases, version, scenario))
            n_tasks = copy_rows(CaseTask.__table__,  # type: ignore[arg-type]
                                task_rows(cases, version, scenario))
            print(f"COPY {n_cases:,} cases and {n_tasks:,} tasks: "
                  f"{time.perf_counter() - started:.1f} s")

            filters = [InboxFilter(), InboxFilter(status="mine"), InboxFilter(level="red"),
                       InboxFilter(overdue_only=True), InboxFilter(status="claimable")]
            timings: list[float] = []
            default: list[float] = []
            for call in range(CALLS + 10):
                flt = filters[call % len(filters)]
                page = 1 + (call // len(filters)) % 3
                db.session.remove()
                reader = db.session.get(User, user_id)
                assert reader is not None
                began = time.perf_counter()
                found = inbox(reader, flt, now=NOW, page=page, per_page=20)
                elapsed = (time.perf_counter() - began) * 1000
                if call < 10:
                    continue  # warm-up: caches, prepared plans
                timings.append(elapsed)
                if flt == InboxFilter():
                    default.append(elapsed)
                if call == 10:
                    print(f"the responder's inbox: {found.total} tasks, counts {found.counts}")
            plans = explain_inbox(user_id)
    finally:
        with app.app_context():
            db.engine.dispose()
        drop_database(admin, DB_NAME)
    p50, p95 = statistics.median(timings), percentile(timings, 0.95)
    print(f"inbox() over {len(timings)} calls (5 filter sets, pages 1-3): "
          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(timings):.1f} ms")
    print(f"  default view only: p50 {statistics.median(default):.1f} ms, "
          f"p95 {percentile(default, 0.95):.1f} ms")
    server = sum(float(line.split(":")[1].split()[0]) for _, plan_text in plans
                 for line in plan_text if line.startswith("Execution Time"))
    print(f"  one default call sends {len(plans)} statements (filter counts included), "
          f"executing in {server:.1f} ms on the server")
    print("query plans of one default inbox() call:")
    for statement, plan_text in plans:
        print("  " + " ".join(statement.split())[:160])
        for line in plan_text:
            print("      " + line)
    verdict = "yes" if p95 < TARGET_MS else "NO"
    print(f"p95 under {TARGET_MS:.0f} ms: {verdict}")
    return 0 if p95 < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
