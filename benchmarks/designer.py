"""Saving a draft with full validation against the bare compile of the same handbook bundle.

Run from the repository root: python benchmarks/designer.py

An SQLite database in a temporary folder gets the schema from the migrations, the platform
tree and the handbooks deployed from disk. The largest bundle (most BPMN bytes) is then
checked both ways, interleaved, in one process:

- "compile": `workflows.compile_version` of the bundle's BPMN files (the bounded worker check
  and the compile, as every load of a version does);
- "save": `handbooks.check_draft`, what a save runs server side: the same compile, the
  handbook's rules (marked steps, lanes, forms, handbook data), pinning every problem on its
  drawn element and the query for steps that running cases wait in.

The ratio of the medians is printed. Target: save <= 3 x compile.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import HandbookVersion  # noqa: E402
from app.services import handbooks, org  # noqa: E402
from workflows import compile_version  # noqa: E402
from workflows.documents import text_bytes  # noqa: E402

NOW = datetime(2026, 7, 26, 2, 0, tzinfo=UTC)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
TARGET = 3.0


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(DATABASE_URL=f"sqlite:///{folder}/bench.db",
                         SECRET_KEY="bench-secret-key-0123456789", clock=lambda: NOW)
        with app.app_context():
            upgrade()
            org.load_org()
            handbooks.deploy(author=None, now=NOW)
            db.session.commit()
            versions = list(db.session.scalars(select(HandbookVersion)))
            version = max(versions, key=lambda v: sum(
                len(t) for n, t in v.files.items() if n.endswith(".bpmn")))
            files = dict(version.files)
            bpmn = {n: text_bytes(t) for n, t in files.items() if n.endswith(".bpmn")}
            size = sum(len(b) for b in bpmn.values())
            assert handbooks.check_draft(version, files) == [], "the bundle should pass"
            compile_times: list[float] = []
            save_times: list[float] = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                compile_version(bpmn)
                compile_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                handbooks.check_draft(version, files)
                save_times.append(time.perf_counter() - started)
    compile_ms = statistics.median(compile_times) * 1000
    save_ms = statistics.median(save_times) * 1000
    ratio = save_ms / compile_ms
    print(f"bundle {version.handbook_key}: {len(bpmn)} BPMN files, {size} bytes, "
          f"{ROUNDS} rounds")
    print(f"bare compile       median {compile_ms:8.1f} ms")
    print(f"save + validation  median {save_ms:8.1f} ms")
    print(f"ratio {ratio:.2f} (target <= {TARGET:g})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
