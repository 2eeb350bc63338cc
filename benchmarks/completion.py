"""A committed task completion against SpiffWorkflow alone doing the same step, on PostgreSQL.

Run from the repository root (PostgreSQL needed; a database `ops_bench_completion`, or
`$BENCH_DB_NAME` when several runs share a server, is created
and dropped): BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
python benchmarks/completion.py

Gas cases are opened through the intake service; then the 研判 (assessment) of each is
completed the way a request does it: a fresh session, `cases.complete` (lock the case, load
the state, validate the form, complete, save the state, sync the inbox projection, write the
history, notify) and the commit. "raw" is SpiffWorkflow alone on the very state each case had
stored before its completion: deserialise around the same compiled specs, complete the same
task with the same form, run the engine steps, serialise. The two are interleaved case by
case in one run; the ratio of medians and the SQL statements per completion are printed.
Target: ratio <= 3, a handful of statements.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "cases"))
sys.path.insert(0, str(ROOT / "tests"))  # cases_fixtures imports the test helpers

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
from app.models import ApiKey, Case, CaseTask, MonitoringPoint, User  # noqa: E402
from app.services import api_keys, case_engine, cases, demo, org  # noqa: E402
from app.services.engine import runtime  # noqa: E402
from app.services.intake import AlertIn  # noqa: E402
from app.services.intake_batches import ingest_many  # noqa: E402
from cases_fixtures import ANSWERS, fill_form  # noqa: E402
from workflows.hooks import engine_call  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB_NAME", "ops_bench_completion")  # several runs at once: own names
CASES = int(os.environ.get("BENCH_CASES", "200"))
TARGET = 3.0




class Raw:
    """SpiffWorkflow alone around the application's compiled specs and script environment."""

    def __init__(self, spec: Any, deps: dict[str, Any]) -> None:
        self.spec, self.deps = spec, deps
        config = dict(CAMUNDA_CONFIG)
        config[BpmnWorkflow] = RawSpeclessConverter
        self.registry = BpmnWorkflowSerializer.configure(config)
        self.encoder = create_encoder(self.registry)
        self.engine = runtime().engine

    def step(self, state: dict[str, Any], task_id: str, form: dict[str, Any],
             moment: datetime) -> bytes:
        with engine_call(moment):
            workflow = self.registry.restore(dict(state["workflow"]), spec=self.spec,
                                             subprocess_specs=dict(self.deps))
            workflow.script_engine = self.engine
            task = workflow.get_task_from_id(UUID(task_id))
            task.set_data(**form)
            task.run()
            workflow.do_engine_steps()
        self.registry._encoder_mode = True
        try:
            text = json.dumps(self.registry.convert(workflow), cls=self.encoder,
                              ensure_ascii=False, separators=(",", ":"))
        finally:
            self.registry._encoder_mode = False
        return text.encode()


def main() -> None:
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") \
        or "postgresql://postgres@127.0.0.1:5432/test"
    admin, url = scratch_database(base, DB_NAME)
    clock = Clock()
    app = create_app(DATABASE_URL=url, SECRET_KEY="bench-secret-0123456789abcdef", clock=clock)
    statements: list[int] = []
    kinds: Counter[str] = Counter()
    counting = [False]

    try:
        with app.app_context():
            upgrade()
            org.load_org()
            demo.load_demo_accounts(now=clock())
            demo.publish_demo_handbooks(now=clock())
            issuer = db.session.scalar(sa.select(User).where(User.username == "sysadmin"))
            api_keys.issue(issuer, name="bench", source_type="iot", scenarios=["gas"],
                           now=clock(), known_scenarios={"gas"})
            town = org.node_by_code("town.01")
            db.session.add_all([MonitoringPoint(code=f"C-{i:05d}", name=f"测点{i}",
                                                scenario="gas", node=town)
                                for i in range(CASES)])
            db.session.commit()
            key = db.session.scalar(sa.select(ApiKey))
            for start in range(0, CASES, 100):
                ingest_many(key, [AlertIn("gas", "ch4_lel", f"C-{i:05d}", 30.0, clock())
                                  for i in range(start, min(start + 100, CASES))], now=clock())
                db.session.commit()
            assessor_id = db.session.scalar(sa.select(User.id).where(
                User.username == "hb_admin"))
            work = []
            for case in db.session.scalars(sa.select(Case).order_by(Case.id)):
                task = db.session.scalar(sa.select(CaseTask).where(
                    CaseTask.case_id == case.id, CaseTask.status == "ready"))
                assert task is not None and task.element_id == "Activity_assessment", task
                loaded = case_engine.load(case)
                form = fill_form(loaded.compiled.form_fields(task.process_id, task.element_id),
                                 ANSWERS[task.element_id])
                work.append((task.id, task.task_id, json.loads(json.dumps(case.state)), form))
            raw = Raw(loaded.compiled.spec(loaded.case.process_id),
                      dict(loaded.compiled.dependencies[loaded.case.process_id]))
            db.session.remove()

            @sa.event.listens_for(db.engine, "before_cursor_execute")
            def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                if counting[0]:
                    statements[-1] += 1
                    kinds[" ".join(statement.split()[:3])[:60]] += 1
                    if os.environ.get("BENCH_TRACE") and len(statements) == 3:
                        import traceback

                        print("----", statement[:100])
                        print("".join(traceback.format_stack(limit=30)[:-3]))

            profiler = None
            if os.environ.get("BENCH_PROFILE"):  # where the application's time goes
                import cProfile

                profiler = cProfile.Profile()
            clock.now += timedelta(minutes=5)
            ours: list[float] = []
            theirs: list[float] = []
            gc.collect()
            for n, (row_id, task_id, state, form) in enumerate(work):
                # Alternate which goes first so neither always runs on a warm cache.
                order = ("raw", "ours") if n % 2 else ("ours", "raw")
                for which in order:
                    if which == "raw":
                        tick = time.perf_counter()
                        raw.step(state, task_id, form, clock())
                        theirs.append(time.perf_counter() - tick)
                        continue
                    actor = db.session.get(User, assessor_id)  # the request's log-in
                    assert actor is not None
                    statements.append(0)
                    counting[0] = True
                    if profiler is not None:
                        profiler.enable()
                    tick = time.perf_counter()
                    cases.complete(actor, row_id, form, now=clock())
                    db.session.commit()
                    ours.append(time.perf_counter() - tick)
                    if profiler is not None:
                        profiler.disable()
                    counting[0] = False
                    db.session.remove()
            sa.event.remove(db.engine, "before_cursor_execute", _count)
            if profiler is not None:
                import pstats

                pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        drop_database(admin, DB_NAME)

    ours_ms = statistics.median(ours) * 1000
    raw_ms = statistics.median(theirs) * 1000
    p95 = sorted(ours)[int(len(ours) * 0.95) - 1] * 1000
    print(f"committed completion of 研判 (gas), {len(ours)} cases, PostgreSQL")
    print(f"  raw SpiffWorkflow  median {raw_ms:6.2f} ms  (deserialise, complete, serialise)")
    print(f"  application        median {ours_ms:6.2f} ms  p95 {p95:6.2f} ms  "
          f"(lock, load, complete, save, projection, history, commit)")
    print(f"  ratio {ours_ms / raw_ms:.2f}   (target <= {TARGET:.0f})")
    print(f"  SQL statements per completion: median {statistics.median(statements):.0f} "
          f"(min {min(statements)}, max {max(statements)})")
    per = len(statements)
    for text, count in kinds.most_common():
        print(f"    {count / per:5.2f} x  {text}")


if __name__ == "__main__":
    main()
