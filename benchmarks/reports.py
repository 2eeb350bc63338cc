"""The district's monthly and annual reports over a million cases, on PostgreSQL.

Run from the repository root (PostgreSQL needed; a database `ops_bench_reports`, or
BENCH_DB_NAME, is created and dropped):
BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python benchmarks/reports.py
(TEST_DATABASE_URL is used when BENCH_DATABASE_URL is not set).

The schema comes from the migrations. 1,000,000 cases of 2025 over 15 scenarios and every town
and village are written with COPY in the order they were opened (as the application writes
them, so a month's cases lie together on disk), each with an alert and the milestones its
steps would have stamped (some late, some false alarms, some cancelled, some escalated, some
left open), and a few thousand data-quality issues. Then `reports.compose` (what a report
freezes: the figures against the previous period and last year, four breakdowns, levels,
trend, alerts, quality, the overdue list) is timed for the district's December report and its
2025 annual report, each beside the bare SQL aggregate over the same rows (one count and two
sums over the period's cases): the ratio base. BENCH_KEEP=1 keeps the database for another run.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from inbox import copy_rows  # noqa: E402

from app import create_app  # noqa: E402
from app.config import _database_url  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (  # noqa: E402
    Alert,
    Case,
    DataQualityIssue,
    HandbookVersion,
    NodeKind,
    PlatformNode,
)
from app.services import handbooks, org, reports  # noqa: E402
from app.services.figures import Period, scope_for  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB_NAME", "ops_bench_reports")
CASES = int(os.environ.get("BENCH_CASES", "1000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
YEAR = 2025
START = datetime(YEAR, 1, 1, tzinfo=UTC) - timedelta(hours=8)  # local midnight, 1 January
SPAN_MINUTES = 365 * 24 * 60
NOW = datetime(YEAR + 1, 1, 5, 2, 0, tzinfo=UTC)
LEVELS = ("red", "orange", "yellow", "blue")
ACCEPT = {"red": 5, "orange": 10, "yellow": 30, "blue": 120}  # minutes
SOURCES = ("iot", "big_data", "video", "social")
MONTHLY_TARGET_S, ANNUAL_TARGET_S = 2.0, 5.0
MILESTONES = ("pushed_at", "accepted_at", "accept_due_at", "arrived_at", "arrive_due_at",
              "feedback_at", "feedback_due_at", "cancelled_at", "medium_loop_at",
              "big_loop_at", "outcome", "closed_at")


# BENCH_KEEP=1 keeps the database afterwards and uses it again next time (no COPY).
KEEP = os.environ.get("BENCH_KEEP") == "1"


def database(base: str) -> tuple[sa.Engine, str, bool]:
    admin = sa.create_engine(_database_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                             {"n": DB_NAME})
        if not (KEEP and exists):
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
            conn.execute(sa.text(f"CREATE DATABASE {DB_NAME}"))
    url = sa.make_url(_database_url(base)).set(database=DB_NAME)
    return admin, url.render_as_string(hide_password=False), bool(KEEP and exists)


def case_rows(places: list[PlatformNode], scenarios: list[tuple[PlatformNode, int, str]],
              seed: int = 11) -> Iterator[dict[str, Any]]:
    """One case per row with the milestones of how it went (late, false alarm, open...)."""
    rng = random.Random(seed)
    for case_id in range(1, CASES + 1):
        scenario, version_id, process_id = scenarios[case_id % len(scenarios)]
        place = places[rng.randrange(len(places))]
        level = LEVELS[rng.randrange(4)]
        # Case ids grow with the opening time, as they do when cases are opened.
        opened = START + timedelta(minutes=SPAN_MINUTES * (case_id - 1) / CASES
                                   + rng.random())
        fate = rng.random()
        row: dict[str, Any] = {
            "id": case_id, "case_no": f"BENCH-{case_id:07d}",
            "scenario": scenario.code.removeprefix("scenario."), "item_code": "BENCH",
            "item_name": "基准预警", "handbook_version_id": version_id,
            "process_id": process_id, "node_id": place.id, "scope_path": place.path,
            "scenario_path": scenario.path, "owner_department_id": scenario.department_id,
            "point_code": f"P-{case_id}", "dedup_key": f"iot|P-{case_id}|x", "level": level,
            "highest_level": level, "loop_level": "small", "unit": "", "first_value": 1.0,
            "last_value": 1.0, "alert_count": 1, "first_seen": opened, "last_seen": opened,
            "opened_at": opened, "due_at": opened + timedelta(hours=24), "state": "{}",
            "state_version": 1, "stuck_attempts": 0, "is_test": case_id % 1000 == 0,
            "event_seq": 0, "last_event_hash": "0" * 64, "status": "closed",
        }
        # Every row names the same columns (COPY takes its column list from the first row).
        row.update(dict.fromkeys(MILESTONES))
        if fate < 0.12:  # false alarm at assessment
            row.update(status="false_alarm", outcome="false_alarm",
                       closed_at=opened + timedelta(minutes=rng.randint(2, 40)))
            yield row
            continue
        pushed = opened + timedelta(minutes=rng.randint(1, 10))
        accepted = pushed + timedelta(minutes=rng.randint(1, ACCEPT[level] * 2))
        arrived = accepted + timedelta(minutes=rng.randint(5, 120))
        feedback = arrived + timedelta(minutes=rng.randint(10, 300))
        row.update(pushed_at=pushed, accepted_at=accepted,
                   accept_due_at=pushed + timedelta(minutes=ACCEPT[level]),
                   arrived_at=arrived, arrive_due_at=accepted + timedelta(minutes=60),
                   feedback_at=feedback, feedback_due_at=arrived + timedelta(hours=4),
                   cancelled_at=feedback - timedelta(minutes=5))
        if fate < 0.14:
            row["medium_loop_at"] = arrived
            row["loop_level"] = "medium"
        elif fate < 0.145:
            row["big_loop_at"] = arrived
            row["loop_level"] = "big"
        if fate > 0.985:  # still open, some past their deadline
            row.update(status="open", feedback_at=None, feedback_due_at=None,
                       cancelled_at=None)
        else:
            row.update(outcome="closed", closed_at=feedback + timedelta(minutes=rng.randint(
                5, 2000)))
        yield row


def alert_rows(seed: int = 11) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed + 1)
    for case_id in range(1, CASES + 1):
        received = START + timedelta(minutes=SPAN_MINUTES * (case_id - 1) / CASES
                                     + rng.random())
        yield {"id": case_id, "received_at": received, "observed_at": received,
               "source_type": SOURCES[case_id % 4],
            "point_code": f"P-{case_id}", "scenario": "gas", "item_code": "BENCH",
            "indicator": "x", "value": 1.0, "unit": "", "level": LEVELS[case_id % 4],
            "dedup_key": f"iot|P-{case_id}|x", "disposition": "opened", "case_id": case_id,
            "unknown_point": False, "payload": "{}"}


def quality_rows() -> Iterator[dict[str, Any]]:
    for n, case_id in enumerate(range(7, CASES + 1, 250), start=1):
        at = START + timedelta(minutes=case_id % SPAN_MINUTES)
        yield {"id": n, "case_id": case_id, "rule": "bench", "message": "基准",
               "detected_at": at, "resolved_at": at + timedelta(days=2) if n % 2 else None}


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    timings, result = [], None
    for _ in range(RUNS + 1):
        db.session.remove()
        began = time.perf_counter()
        result = work()
        timings.append(time.perf_counter() - began)
    return statistics.median(timings[1:]), result  # the first run warms the caches


def bare(period: Period) -> Callable[[], Any]:
    """The ratio base: one aggregate over the same rows, nothing else."""
    query = sa.text(
        "SELECT count(*), sum(extract(epoch FROM accepted_at - opened_at)), "
        "sum(extract(epoch FROM closed_at - opened_at)) FROM warning_case "
        "WHERE opened_at >= :start AND opened_at < :end AND NOT is_test")
    return lambda: db.session.execute(query, {"start": period.start_utc,
                                              "end": period.end_utc}).one()


def main() -> int:
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not base or not base.startswith("postgres"):
        print("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL URL")
        return 2
    admin, url, reused = database(base)
    app = create_app(DATABASE_URL=url, SECRET_KEY="bench-secret-key-0123456789",
                     clock=lambda: NOW)
    results: dict[str, tuple[float, float, int]] = {}
    try:
        with app.app_context():
            started = time.perf_counter()
            upgrade()
            # A kept database whose load failed half-way is loaded again.
            reused = reused and bool(db.session.scalar(sa.select(Case.id).limit(1)))
            if reused:
                print("the kept database again (BENCH_KEEP=1)")
        with app.app_context():
            if not reused:
                load(started)
            for name, period in (("monthly (December)", Period.month(YEAR, 12)),
                                 ("annual (2025)", Period.year(YEAR))):
                seconds, content = timed(lambda p=period: reports.compose(
                    scope_for("district"), p, now=NOW))
                base_seconds, row = timed(bare(period))
                results[name] = (seconds, base_seconds, int(row[0]))
                print(f"district {name}: compose {seconds:.3f} s; bare aggregate over the "
                      f"same {row[0]:,} cases {base_seconds:.3f} s; ratio "
                      f"{seconds / base_seconds:.1f}; opened {content['current']['opened']:,},"
                      f" closed {content['current']['closed']:,}")
    finally:
        with app.app_context():
            db.engine.dispose()
        if not KEEP:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
        admin.dispose()
    monthly = results["monthly (December)"][0]
    annual = results["annual (2025)"][0]
    ok = monthly < MONTHLY_TARGET_S and annual < ANNUAL_TARGET_S
    print(f"monthly under {MONTHLY_TARGET_S:.0f} s and annual under {ANNUAL_TARGET_S:.0f} s: "
          f"{'yes' if ok else 'NO'}")
    return 0 if ok else 1


def load(started: float) -> None:
    """The organisation, the handbooks and a million cases with their alerts."""
    org.load_org()
    handbooks.deploy(author=None, now=NOW)
    db.session.commit()
    versions = {v.handbook_key: v for v in db.session.scalars(
        sa.select(HandbookVersion))}
    scenarios = [(n, versions[n.code.removeprefix("scenario.")].id,
                  versions[n.code.removeprefix("scenario.")].process_id)
                 for n in db.session.scalars(sa.select(PlatformNode).where(
                     PlatformNode.kind == NodeKind.SCENARIO))]
    places = list(db.session.scalars(sa.select(PlatformNode).where(
        PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.VILLAGE)))))
    print(f"schema and organisation: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    n_cases = copy_rows(Case.__table__,  # type: ignore[arg-type]
                        case_rows(places, scenarios))
    n_alerts = copy_rows(Alert.__table__, alert_rows())  # type: ignore[arg-type]
    n_issues = copy_rows(DataQualityIssue.__table__,  # type: ignore[arg-type]
                         quality_rows())
    print(f"COPY {n_cases:,} cases, {n_alerts:,} alerts, {n_issues:,} data-quality "
          f"issues: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
