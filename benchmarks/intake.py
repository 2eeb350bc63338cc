"""Intake and timer throughput on PostgreSQL, printed as figures and ratios from one run.

Run from the repository root (PostgreSQL needed; a database `ops_bench_intake`, or
`$BENCH_DB_NAME` when several runs share a server, is created and
dropped): BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python benchmarks/intake.py
BENCH_PROFILE=storm (or 1) also prints a profile of the storm's new cases, BENCH_PROFILE=repeats
one of the plain repeats, BENCH_PROFILE=keyed one of the keyed repeats (BENCH_PROFILE_SORT=tottime
sorts it by own time).

1. New cases per second (each starts the gas handbook's process and is committed), as a share
   of the raw engine's create-run-serialise rate for the same compiled handbook: a storm's
   batches of 100 new warnings (target >= 0.5), and one alert per request. The raw engine
   runs the same number of instances right before each batch (each 100 requests), so that
   both sides of a ratio see the machine in the same state.
2. Repeats absorbed per second (grouped into open cases, committed in batches). Target 5,000.
3. Timer firing with 100,000 waiting cases: how long after its deadline a due timer has fired,
   given the scheduler's poll interval. Target p99 under 1 s.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import sqlalchemy as sa  # noqa: E402
from bench_db import Clock, drop_database, scratch_database  # noqa: E402
from engine_overhead import RawSpeclessConverter  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from SpiffWorkflow.bpmn import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.bpmn.serializer.helpers.encoder import create_encoder  # noqa: E402
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import ApiKey, Case, MonitoringPoint, User  # noqa: E402
from app.services import api_keys, case_variables, cases, demo, org, timers  # noqa: E402
from app.services.engine import compiled  # noqa: E402
from app.services.handbooks import published_version  # noqa: E402
from app.services.intake import AlertIn, ingest  # noqa: E402
from app.services.intake_batches import ingest_many  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB_NAME", "ops_bench_intake")  # several runs at once: own names
NEW_CASES = int(os.environ.get("BENCH_NEW_CASES", "300"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3000"))
WAITING = int(os.environ.get("BENCH_WAITING", "100000"))


def profiling(phase: str) -> Any:
    """A running profiler when BENCH_PROFILE names this phase (`1` names the storm)."""
    wanted = os.environ.get("BENCH_PROFILE", "")
    if phase not in (wanted, "storm" if wanted == "1" else ""):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def report(profiler: Any) -> None:
    if profiler is None:
        return
    import pstats

    profiler.disable()
    order = os.environ.get("BENCH_PROFILE_SORT", "cumulative")  # or tottime
    stats = pstats.Stats(profiler).sort_stats(order)
    stats.print_stats(40)
    if os.environ.get("BENCH_PROFILE_CALLERS"):  # who calls these, e.g. "encode|dumps"
        stats.print_callers(os.environ["BENCH_PROFILE_CALLERS"])


def in_hundreds(count: int, alert: Callable[[int], AlertIn]) -> list[list[AlertIn]]:
    """`count` alerts in batches of 100, as a source system posts them in a storm."""
    return [[alert(i) for i in range(b, min(b + 100, count))] for b in range(0, count, 100)]


def raw_create_seconds(version: Any, data: dict[str, Any], n: int, engine: Any) -> float:
    """The engine alone: create the instance, run to the first wait, serialise without spec.

    It runs the handbook's scripts with the same script environment as the application (the
    handbooks use its helpers), but records no history and touches no database.
    """
    spec = version.spec("scenario_gas")
    deps = dict(version.dependencies["scenario_gas"])
    config = dict(CAMUNDA_CONFIG)
    config[BpmnWorkflow] = RawSpeclessConverter
    registry = BpmnWorkflowSerializer.configure(config)
    encoder = create_encoder(registry)
    import json

    from workflows.hooks import engine_call

    moment = datetime(2026, 7, 26, 2, 0, tzinfo=UTC)
    start = time.perf_counter()
    for _ in range(n):
        # The same fixed-clock context the application runs the engine in (handbook scripts
        # read `now()` from it); no history listener, no ids, no database.
        with engine_call(moment):
            workflow = BpmnWorkflow(spec, dict(deps), script_engine=engine)
            workflow.task_tree.data.update(json.loads(json.dumps(data)))
            workflow.do_engine_steps()
        registry._encoder_mode = True
        json.dumps(registry.convert(workflow), cls=encoder, separators=(",", ":"))
        registry._encoder_mode = False
    return time.perf_counter() - start


def main() -> None:
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") \
        or "postgresql://postgres@127.0.0.1:5432/test"
    admin, url = scratch_database(base, DB_NAME)
    clock = Clock()
    app = create_app(DATABASE_URL=url, SECRET_KEY="bench-secret-0123456789abcdef", clock=clock)
    try:
        with app.app_context():
            upgrade()
            org.load_org()
            demo.load_demo_accounts(now=clock())
            demo.publish_demo_handbooks(now=clock())
            tech = db.session.scalar(sa.select(User).where(User.username == "tech_admin"))
            tech_admin = db.session.scalar(sa.select(User).where(User.username == "sysadmin"))
            api_keys.issue(tech_admin or tech, name="bench", source_type="iot",
                           scenarios=["gas"], now=clock(), known_scenarios={"gas"})
            town = org.node_by_code("town.02")
            # B-: opened one alert per request; S-: opened by a storm's batches.
            db.session.add_all([MonitoringPoint(code=f"{prefix}-{i:05d}", name=f"测点{i}",
                                                scenario="gas", node=town)
                                for prefix in ("B", "S") for i in range(NEW_CASES)])
            db.session.commit()
            version = published_version("gas")
            spec = compiled(version)
            handbook = cases.handbook_of(version)
            data = case_variables.start_variables(handbook, handbook.item("GAS-CH4-MANHOLE")
                                         if any(i.code == "GAS-CH4-MANHOLE"
                                                for i in handbook.warning_items)
                                         else handbook.warning_items[0],
                                         level="yellow", case_no="RQ-0", value=30.0,
                                         town="陆家嘴街道", point="B-0", opened_at=clock())
            from app.services.engine import runtime

            raw_create_seconds(spec, data, 20, runtime().engine)  # warm
            key = db.session.scalar(sa.select(ApiKey))

            key_id = key.id

            def request_session() -> ApiKey:
                # Each API request starts with a fresh session, as the web app does.
                db.session.remove()
                found = db.session.get(ApiKey, key_id)
                assert found is not None
                return found

            statements = [0]

            @sa.event.listens_for(db.engine, "before_cursor_execute")
            def _count(*_: Any) -> None:
                statements[0] += 1

            spent, raw_spent = 0.0, 0.0
            for i in range(NEW_CASES):
                if i % 100 == 0:
                    raw_spent += raw_create_seconds(spec, data, min(100, NEW_CASES - i),
                                                    runtime().engine)
                start = time.perf_counter()
                key = request_session()
                ingest(key, AlertIn("gas", "ch4_lel", f"B-{i:05d}", 30.0, clock()), now=clock())
                db.session.commit()
                spent += time.perf_counter() - start
                clock.now += timedelta(seconds=1)  # deadlines one second apart
            case_rate, single_raw_rate = NEW_CASES / spent, NEW_CASES / raw_spent
            new_case_statements = statements[0] / NEW_CASES
            sa.event.remove(db.engine, "before_cursor_execute", _count)

            # Repeats arrive in batches of 100 per request, as a source system posts them in a
            # storm; each batch is one call to the batch intake and one commit.
            batches = in_hundreds(REPEATS, lambda i: AlertIn(
                "gas", "ch4_lel", f"B-{i % NEW_CASES:05d}", 31.0, clock()))
            profiler = profiling("repeats")
            start = time.perf_counter()
            for batch in batches:
                key = request_session()
                ingest_many(key, batch, now=clock())
                db.session.commit()
            repeat_rate = REPEATS / (time.perf_counter() - start)
            report(profiler)

            # The same with an idempotency key on every alert (what careful source systems
            # send), then the very same batches again (a client retrying after a timeout).
            keyed = in_hundreds(REPEATS, lambda i: AlertIn(
                "gas", "ch4_lel", f"B-{i % NEW_CASES:05d}", 31.0, clock(),
                idempotency_key=f"storm-{i}"))
            profiler = profiling("keyed")
            start = time.perf_counter()
            for batch in keyed:
                key = request_session()
                ingest_many(key, batch, now=clock())
                db.session.commit()
            keyed_rate = REPEATS / (time.perf_counter() - start)
            report(profiler)
            start = time.perf_counter()
            for batch in keyed:
                key = request_session()
                assert all(o.replayed for o in ingest_many(key, batch, now=clock()))
                db.session.commit()
            retry_rate = REPEATS / (time.perf_counter() - start)

            # A storm's new warnings: batches of 100 alerts from 100 points without an open
            # case, each batch one request and one commit, the cases opened together.
            statements[0] = 0
            sa.event.listen(db.engine, "before_cursor_execute", _count)
            profiler = profiling("storm")
            storm = in_hundreds(NEW_CASES, lambda i: AlertIn(
                "gas", "ch4_lel", f"S-{i:05d}", 30.0, clock()))
            spent, raw_spent = 0.0, 0.0
            for batch in storm:
                if profiler is not None:
                    profiler.disable()
                raw_spent += raw_create_seconds(spec, data, len(batch), runtime().engine)
                if profiler is not None:
                    profiler.enable()
                start = time.perf_counter()
                key = request_session()
                assert all(o.disposition == "opened"
                           for o in ingest_many(key, batch, now=clock()))
                db.session.commit()
                spent += time.perf_counter() - start
                clock.now += timedelta(seconds=1)
            batch_rate, raw_rate = NEW_CASES / spent, NEW_CASES / raw_spent
            batch_statements = statements[0] / len(storm)
            sa.event.remove(db.engine, "before_cursor_execute", _count)
            report(profiler)

            # 100,000 waiting cases whose timers lie far ahead, beside the real ones.
            template = db.session.scalar(sa.select(Case).limit(1))
            db.session.execute(sa.text(f"""
                INSERT INTO warning_case (case_no, scenario, item_code, item_name,
                  handbook_version_id, process_id, node_id, scope_path, scenario_path,
                  owner_department_id, point_code, dedup_key, status, level, highest_level,
                  loop_level, unit, first_value, last_value, alert_count, first_seen, last_seen,
                  opened_at, state, state_version, next_timer_at, event_seq, last_event_hash)
                SELECT 'W-' || g, scenario, item_code, item_name, handbook_version_id,
                  process_id, node_id, scope_path, scenario_path, owner_department_id,
                  'W-' || g, 'bench|W-' || g, 'open', level, highest_level, loop_level, unit,
                  first_value, last_value, 1, first_seen, last_seen, opened_at, '{{}}', 1,
                  next_timer_at + interval '30 days' + g * interval '1 second', 0, ''
                FROM warning_case, generate_series(1, {WAITING}) AS g WHERE id = :id
            """), {"id": template.id})
            # The storm's cases fell due together; the deadlines measured here are those of
            # the cases opened a second apart.
            db.session.execute(sa.text("UPDATE warning_case SET next_timer_at = next_timer_at "
                                       "+ interval '60 days' WHERE point_code LIKE 'S-%'"))
            db.session.execute(sa.text("ANALYZE warning_case"))
            db.session.commit()
            due = sorted(d for d in db.session.scalars(sa.select(Case.next_timer_at).where(
                Case.point_code.like("B-%"))).all() if d is not None)
            # The scheduler polls every `poll` seconds; at each poll it fires what is due.
            # Deadlines are one second apart (cases opened a second apart), as in real traffic.
            poll = float(app.config["TIMER_POLL_SECONDS"])
            lateness: list[float] = []
            query_ms: list[float] = []
            moment = due[0]
            fired = 0
            while moment <= due[-1] + timedelta(seconds=poll):
                moment += timedelta(seconds=poll)
                clock.now = moment
                tick = time.perf_counter()
                ids = timers.due_case_ids(moment, limit=500)
                query_ms.append((time.perf_counter() - tick) * 1000)
                for case_id in ids:
                    deadline = db.session.scalar(sa.select(Case.next_timer_at).where(
                        Case.id == case_id))
                    if timers.fire_case(case_id, moment):
                        db.session.commit()
                        fired += 1
                        spent = time.perf_counter() - tick
                        lateness.append((moment - deadline).total_seconds() + spent)
                db.session.remove()
            lateness.sort()
            p99 = lateness[max(0, int(len(lateness) * 0.99) - 1)] if lateness else float("nan")
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        drop_database(admin, DB_NAME)

    print(f"new cases       raw engine {raw_rate:8.1f}/s   committed in batches of 100 "
          f"{batch_rate:8.1f}/s   ratio {batch_rate / raw_rate:.2f}   (target >= 0.5)   "
          f"{batch_statements:.1f} SQL statements per batch")
    print(f"                one alert per request {case_rate:8.1f}/s   raw engine "
          f"{single_raw_rate:8.1f}/s   ratio {case_rate / single_raw_rate:.2f}   "
          f"{new_case_statements:.1f} SQL statements per new case")
    print(f"repeats         absorbed {repeat_rate:8.1f}/s   (target >= 5000/s)   "
          f"ratio {repeat_rate / 5000:.2f} of target")
    print(f"keyed repeats   absorbed {keyed_rate:8.1f}/s   retries answered {retry_rate:8.1f}/s"
          f"   (target >= 5000/s)   ratio {keyed_rate / 5000:.2f} of target")
    print(f"timers          {WAITING:,} waiting, {fired} fired as they fell due: due query "
          f"p50 {statistics.median(query_ms):.1f} ms, lateness p50 "
          f"{statistics.median(lateness):.2f} s p99 {p99:.2f} s with a {poll} s poll   "
          f"(target p99 < 1 s)")


if __name__ == "__main__":
    main()
