"""Saving a draft from the designer's workspace against the bare engine compile of the same
bundle: the largest handbook (by size of its files), one BPMN file changed per save.

Run from the repository root: python benchmarks/designer.py

"compile" is `compile_version` over the bundle's BPMN files, nothing else. "save" is what the
save endpoint's service does: parse and check the sent file, read the draft, write the files,
content hash and element diff, append the audit row, then the full validation (engine compile
and the handbook's own checks), on a file SQLite database, each save rolled back. Both run in
one process, interleaved, and the ratio of the medians is printed. Target: <= 3.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import HandbookVersion, Role, RoleAssignment, User  # noqa: E402
from app.services import handbook_drafts, handbooks, org  # noqa: E402
from workflows import compile_version  # noqa: E402

ROUNDS = 15


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def timed(action: Callable[[], Any]) -> float:
    gc.collect()
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(DATABASE_URL=f"sqlite:///{folder}/bench.db",
                         SECRET_KEY="benchmark-secret-0123456789")
        with app.app_context():
            upgrade()
            org.load_org()
            district = org.node_by_code("district")
            writer = User(username="bench.writer", display_name="基准", password_hash="x",
                          home_node=district)
            writer.assignments = [RoleAssignment(role=Role.BUSINESS_ADMIN, node=district)]
            db.session.add(writer)
            now = app.extensions["clock"]()
            handbooks.deploy(author=writer, now=now)
            db.session.commit()
            versions = list(db.session.scalars(select(HandbookVersion)))
            largest = max(versions, key=lambda v: sum(len(t) for t in v.files.values()))
            files = dict(largest.files)
            bpmn = {n: t.encode("utf-8") for n, t in files.items() if n.endswith(".bpmn")}
            own = f"bpmn/{largest.process_id}.bpmn"
            if own not in files:
                own = next(n for n in sorted(files) if n.endswith(".bpmn"))
            print(f"bundle: {largest.handbook_key}, {len(bpmn)} BPMN files, "
                  f"{sum(len(b) for b in bpmn.values()) / 1024:.0f} KB")

            def save(round_no: int) -> None:
                edited = files[own].replace("</bpmn:definitions>",
                                            f"<!-- save {round_no} --></bpmn:definitions>")
                saved = handbook_drafts.save_draft(
                    writer, largest.handbook_key, draft_id=largest.id,
                    revision=largest.revision, source_version_id=largest.id,
                    files={own: edited}, note="benchmark", now=now)
                assert saved.problems == [], saved.problems
                db.session.rollback()

            compile_times: list[float] = []
            save_times: list[float] = []
            for round_no in range(ROUNDS + 2):
                c = timed(lambda: compile_version(bpmn))
                s = timed(lambda n=round_no: save(n))  # type: ignore[misc]
                if round_no >= 2:  # warm-up
                    compile_times.append(c)
                    save_times.append(s)
            db.engine.dispose()
    compile_ms, save_ms = median_ms(compile_times), median_ms(save_times)
    print(f"bare compile of the bundle      {compile_ms:8.1f} ms (median of {ROUNDS})")
    print(f"save with full validation       {save_ms:8.1f} ms (median of {ROUNDS})")
    print(f"ratio save / compile            {save_ms / compile_ms:8.2f}   (target <= 3)")


if __name__ == "__main__":
    main()
