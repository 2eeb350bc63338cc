"""Case search, duty board and export on PostgreSQL with 1,000,000 cases and 5,000,000 alerts.

Run from the repository root (PostgreSQL needed; a database `ops_bench_oversight` is created,
and dropped unless BENCH_KEEP=1, which also reuses it on the next run):
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python benchmarks/oversight.py
(TEST_DATABASE_URL is used when BENCH_DATABASE_URL is not set).

The schema comes from the migrations; the rows are written by INSERT ... SELECT over
generate_series: cases spread over the 15 scenarios and 36 streets and towns (a fifth of them
in villages), one year of history, 4 % still open, a few in medium and big loops; five alerts
per case. Then, as an auditor (whole district, the widest scope):
  - `case_search.search()` (the page's and the API's call, facets included) for the default
    view and for each facet filter, p50 / p95 against 50 ms;
  - `duty_board.board()` for the district duty officer, against 100 ms;
  - a 100,000-row CSV and XLSX export streamed to nowhere, with peak Python memory
    (tracemalloc) against a 10,000-row one: flat means the same peak.
BENCH_PARTS=search,board,export (the default) chooses what is measured.
EXPLAIN ANALYZE is printed for every measurement over its target.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from werkzeug.datastructures import MultiDict  # noqa: E402

from app import create_app  # noqa: E402
from app.config import _database_url  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Case, HandbookVersion, Role, RoleAssignment, User  # noqa: E402
from app.services import case_export, case_search, duty_board, handbooks, org  # noqa: E402
from app.web.oversight import _csv_rows, _xlsx_chunks  # noqa: E402

DB_NAME = "ops_bench_oversight"
CASES = int(os.environ.get("BENCH_CASES", "1000000"))
ALERTS_PER_CASE = int(os.environ.get("BENCH_ALERTS_PER_CASE", "5"))
CALLS = int(os.environ.get("BENCH_CALLS", "40"))
EXPORT_ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "100000"))
SEARCH_TARGET_MS = 50.0
BOARD_TARGET_MS = 100.0
NOW = datetime(2026, 7, 26, 2, 0, tzinfo=UTC)

FILL_CASES = """
WITH places AS (
    SELECT row_number() OVER (ORDER BY n.id) - 1 AS k, n.id, n.path
    FROM platform_node n WHERE n.kind IN ('town', 'village')
      AND (n.kind = 'town' OR n.code LIKE '%.v001' OR n.code LIKE '%.v002')),
lines AS (
    SELECT row_number() OVER (ORDER BY n.id) - 1 AS k, substr(n.code, 10) AS scenario, n.path,
           n.department_id
    FROM platform_node n WHERE n.kind = 'scenario'),
counts AS (SELECT (SELECT count(*) FROM places) AS places, (SELECT count(*) FROM lines) AS lines)
INSERT INTO warning_case (id, case_no, scenario, item_code, item_name, handbook_version_id,
    process_id, node_id, scope_path, scenario_path, owner_department_id, point_code, point_id,
    dedup_key, status, outcome, level, highest_level, loop_level, unit, first_value, last_value,
    alert_count, first_seen, last_seen, opened_at, accepted_at, closed_at, due_at, state,
    state_version, next_timer_at, error, stuck_since, stuck_attempts, failure, is_test,
    event_seq, last_event_hash)
SELECT g, 'BX-' || lpad(g::text, 8, '0'), l.scenario, 'ITEM', '基准预警事项', :version,
    :process, p.id, p.path, l.path, l.department_id, 'PT-' || (g % 50000), NULL,
    (ARRAY['iot','iot','iot','big_data','video_ai','social'])[1 + g % 6] || '|PT-' || (g % 50000)
        || '|x' || g,
    CASE WHEN g % 100 < 4 THEN 'open' WHEN g % 100 < 7 THEN 'false_alarm' ELSE 'closed' END,
    CASE WHEN g % 100 < 4 THEN NULL WHEN g % 100 < 7 THEN 'false_alarm' ELSE 'confirmed' END,
    (ARRAY['blue','blue','blue','yellow','yellow','orange','red'])[1 + (g / 7) % 7],
    (ARRAY['blue','blue','blue','yellow','yellow','orange','red'])[1 + (g / 7) % 7],
    CASE WHEN g % 500 = 0 THEN 'big' WHEN g % 50 = 0 THEN 'medium' ELSE 'small' END,
    '', 1, 1, 5, o.at, o.at, o.at,
    CASE WHEN g % 100 BETWEEN 2 AND 3 THEN NULL ELSE o.at + interval '10 minutes' END,
    CASE WHEN g % 100 < 7 THEN NULL ELSE o.at + interval '5 hours' END,
    o.at + interval '24 hours', '{}', 1, NULL, NULL,
    CASE WHEN g % 1000 = 1 THEN o.at END, 0, NULL, false, 0, repeat('0', 64)
FROM generate_series(1, :n) AS g
CROSS JOIN counts c
JOIN places p ON p.k = (g * 7) % c.places
JOIN lines l ON l.k = (g / 3) % c.lines
CROSS JOIN LATERAL (SELECT CAST(:now AS timestamptz) - (:n - g) * interval '31 seconds' AS at) o
"""

FILL_ALERTS = """
INSERT INTO alert (id, received_at, observed_at, source_type, point_code, scenario, item_code,
    indicator, value, unit, level, dedup_key, disposition, case_id, unknown_point, payload)
SELECT a, c.opened_at + (a % :per) * interval '1 minute',
    c.opened_at + (a % :per) * interval '1 minute', split_part(c.dedup_key, '|', 1),
    c.point_code, c.scenario, 'ITEM', 'x', 1.0 + a % 7, '', c.level, c.dedup_key,
    CASE WHEN a % :per = 0 THEN 'opened' ELSE 'grouped' END, c.id, false,
    CAST('{"address": "浦东新区某路' || (c.id % 997) || '号"}' AS json)
FROM generate_series(1, CAST(:n AS integer) * CAST(:per AS integer)) AS a
JOIN warning_case c ON c.id = (a - 1) / :per + 1
"""


def database(base: str, keep: bool) -> tuple[sa.Engine, str, bool]:
    admin = sa.create_engine(_database_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                             {"n": DB_NAME}) is not None
        if not (keep and exists):
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
            conn.execute(sa.text(f"CREATE DATABASE {DB_NAME}"))
    url = sa.make_url(_database_url(base)).set(database=DB_NAME)
    return admin, url.render_as_string(hide_password=False), keep and exists


def fill() -> None:
    started = time.perf_counter()
    upgrade()
    org.load_org()
    handbooks.deploy(author=None, now=NOW)
    version = db.session.scalar(sa.select(HandbookVersion).where(
        HandbookVersion.handbook_key == "gas"))
    assert version is not None
    for name, roles in (("bench.auditor", [(Role.AUDITOR, "district")]),
                        ("bench.officer", [(Role.DISTRICT_OFFICE, "district")]),
                        ("bench.head", [(Role.DEPARTMENT_HEAD, "industry.construction")])):
        user = User(username=name, display_name=name, password_hash="x",
                    home_node=org.node_by_code("district"), password_changed_at=NOW)
        user.assignments = [RoleAssignment(role=r, node=org.node_by_code(c)) for r, c in roles]
        db.session.add(user)
    db.session.commit()
    print(f"schema and organisation: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    db.session.execute(sa.text(FILL_CASES), {"version": version.id, "process": version.process_id,
                                             "n": CASES, "now": NOW})
    db.session.commit()
    print(f"INSERT ... SELECT {CASES:,} cases: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    db.session.execute(sa.text(FILL_ALERTS), {"n": CASES, "per": ALERTS_PER_CASE})
    db.session.commit()
    print(f"INSERT ... SELECT {CASES * ALERTS_PER_CASE:,} alerts: "
          f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    for table in ("warning_case", "alert"):
        db.session.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                   f"(SELECT max(id) FROM {table}))"))
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE warning_case"))
        conn.execute(sa.text("VACUUM ANALYZE alert"))
    print(f"VACUUM ANALYZE: {time.perf_counter() - started:.1f} s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def user(name: str) -> User:
    db.session.remove()
    found = db.session.scalar(sa.select(User).where(User.username == name))
    assert found is not None
    _ = [a.node for a in found.assignments]
    return found


def timed(call: Callable[[], Any], calls: int) -> list[float]:
    for _ in range(2):  # warm-up: caches, prepared plans
        call()
    out = []
    for _ in range(calls):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def explain(statement: Any) -> None:
    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
    rows = db.session.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")).scalars()
    print("    " + "\n    ".join(rows))


def search_plans(query: case_search.CaseQuery, reader: User) -> None:
    scope = case_search.scope_of(reader)
    where = case_search.conditions(query, scope, now=NOW)
    print("  EXPLAIN count:")
    explain(sa.select(sa.func.count()).select_from(Case).where(*where))
    print("  EXPLAIN page:")
    explain(sa.select(Case.id).where(*where).order_by(*case_search.SORTS[query.sort]).limit(25))
    own = next((name for name, _ in query.params()), None)
    facet_where = case_search.conditions(query, scope, now=NOW, without=own)
    print(f"  EXPLAIN one facet (scenario, without {own}):")
    explain(sa.select(Case.scenario, sa.func.count()).where(*facet_where)
            .group_by(Case.scenario))


def export_peak(fmt: str, rows: int, reader: User) -> tuple[float, float, int]:
    """Seconds, peak MiB of Python allocations and bytes of one streamed export."""
    query = case_search.parse_query(MultiDict({"sort": "-opened"}))
    scope = case_search.scope_of(reader)
    tracemalloc.start()
    began = time.perf_counter()
    produced = 0
    source = itertools.islice(case_export.export_rows(scope, query, now=NOW), rows)
    if fmt == "csv":
        for chunk in _csv_rows(source):
            produced += len(chunk.encode("utf-8"))
    else:
        for data in _xlsx_chunks(source):
            produced += len(data)
    elapsed = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] / (1024 * 1024)
    tracemalloc.stop()
    return elapsed, peak, produced


def main() -> int:
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not base or not base.startswith("postgres"):
        print("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL URL")
        return 2
    keep = os.environ.get("BENCH_KEEP") == "1"
    admin, url, reused = database(base, keep)
    app = create_app(DATABASE_URL=url, SECRET_KEY="bench-secret-key-0123456789",
                     clock=lambda: NOW)
    ok = True
    try:
        with app.app_context():
            if reused:
                upgrade()
                print(f"reusing {DB_NAME}")
            else:
                fill()
            if os.environ.get("BENCH_FILL_ONLY") == "1":
                return 0
            counts = db.session.execute(sa.text(
                "SELECT (SELECT count(*) FROM warning_case), (SELECT count(*) FROM alert)")).one()
            print(f"rows: {counts[0]:,} cases, {counts[1]:,} alerts")
            filters = {
                "default view": "",
                "state=open": "state=open&state=in_progress&state=stuck",
                "state=closed": "state=closed",
                "level=red": "level=red",
                "scenario=gas": "scenario=gas",
                "town=town.02": "town=town.02",
                "department=construction": "department=construction",
                "loop=big": "loop=big",
                "source=social": "source=social",
                "overdue=1": "overdue=1",
                "opened last 7 days": "opened_from=2026-07-19",
            }
            print(f"case_search.search() as an auditor (district), facets included, "
                  f"{CALLS} calls each; target p95 < {SEARCH_TARGET_MS:.0f} ms")
            # BENCH_PARTS=export (or search,board) measures only those parts.
            parts = set(os.environ.get("BENCH_PARTS", "search,board,export").split(","))
            for label, raw in (filters.items() if "search" in parts else ()):
                query = case_search.parse_query(MultiDict(
                    [tuple(p.split("=", 1)) for p in raw.split("&") if p]))
                reader = user("bench.auditor")
                found = case_search.search(reader, query, now=NOW)
                times = timed(lambda q=query, r=reader: case_search.search(r, q, now=NOW), CALLS)
                p50, p95 = statistics.median(times), percentile(times, 0.95)
                passed = p95 < SEARCH_TARGET_MS
                ok &= passed
                print(f"  {label:<26} {found.total:>9,} rows  p50 {p50:7.1f} ms  "
                      f"p95 {p95:7.1f} ms  {'ok' if passed else 'OVER'}")
                if not passed and os.environ.get("BENCH_EXPLAIN", "1") == "1":
                    search_plans(query, reader)
            for name in (("bench.officer", "bench.head") if "board" in parts else ()):
                reader = user(name)
                times = timed(lambda r=reader: duty_board.board(r, now=NOW), CALLS)
                p50, p95 = statistics.median(times), percentile(times, 0.95)
                passed = p95 < BOARD_TARGET_MS
                ok &= passed
                print(f"duty_board.board() as {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
                      f"(target {BOARD_TARGET_MS:.0f} ms) {'ok' if passed else 'OVER'}")
            reader = user("bench.auditor")
            for fmt in (("csv", "xlsx") if "export" in parts else ()):
                small = export_peak(fmt, EXPORT_ROWS // 10, reader)
                large = export_peak(fmt, EXPORT_ROWS, reader)
                print(f"export {fmt}: {EXPORT_ROWS // 10:,} rows {small[0]:.1f} s, peak "
                      f"{small[1]:.1f} MiB; {EXPORT_ROWS:,} rows {large[0]:.1f} s, peak "
                      f"{large[1]:.1f} MiB, {large[2] / 1e6:.1f} MB "
                      f"(peak ratio {large[1] / max(small[1], 0.01):.2f})")
    finally:
        with app.app_context():
            db.engine.dispose()
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
        admin.dispose()
    print("all targets met" if ok else "some targets NOT met (see OVER above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
