"""The case list's kept counts on PostgreSQL with real connections and commits: writers
changing and adding cases at once, while the counts are summed again and again, leave the
tally exactly equal to the cases."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import CaseTally, HandbookVersion
from app.services import case_tally, handbooks
from cases_fixtures import fresh_pg_app
from helpers import Clock

pytestmark = pytest.mark.commits

DB_NAME = "ops_case_tally_test"
CASES = 200

NEW_CASES = """
INSERT INTO warning_case (case_no, scenario, item_code, item_name, handbook_version_id,
    process_id, node_id, scope_path, scenario_path, owner_department_id, point_code, dedup_key,
    status, level, highest_level, loop_level, unit, first_value, last_value, alert_count,
    first_seen, last_seen, opened_at, due_at, state, state_version, stuck_attempts, is_test,
    event_seq, last_event_hash)
SELECT :prefix || g, s.scenario, 'ITEM', '计数', :version, :process, p.id, p.path, s.path,
    s.department_id, 'PT-' || g,
    (ARRAY['iot','social'])[1 + g % 2] || '|' || :prefix || g || '|x',
    'open', (ARRAY['red','orange','yellow','blue'])[1 + g % 4],
    (ARRAY['red','orange','yellow','blue'])[1 + g % 4], 'small', '', 1, 1, 1, now(), now(),
    now(), now() + interval '1 day', '{}', 1, 0, false, 0, repeat('0', 64)
FROM generate_series(1, :n) AS g
JOIN LATERAL (SELECT id, path FROM platform_node WHERE kind IN ('town', 'village')
              ORDER BY id OFFSET (g * 7) % 50 LIMIT 1) p ON true
JOIN LATERAL (SELECT substr(code, 10) AS scenario, path, department_id FROM platform_node
              WHERE kind = 'scenario' ORDER BY id OFFSET g % 15 LIMIT 1) s ON true
"""

CHANGES = (
    "UPDATE warning_case SET accepted_at = now() WHERE id = :id",
    "UPDATE warning_case SET status = 'closed', closed_at = now() WHERE id = :id",
    "UPDATE warning_case SET status = 'false_alarm' WHERE id = :id",
    "UPDATE warning_case SET level = 'red', loop_level = 'big' WHERE id = :id",
    "UPDATE warning_case SET stuck_since = now() WHERE id = :id",
    "UPDATE warning_case SET stuck_since = NULL, status = 'open' WHERE id = :id",
    "UPDATE warning_case SET alert_count = alert_count + 1 WHERE id = :id",
)


@pytest.fixture
def pg_app() -> Iterator[tuple[Flask, Clock]]:
    with fresh_pg_app(DB_NAME) as (app, clock):
        with app.app_context():
            handbooks.deploy(author=None, now=clock())
            db.session.commit()
        yield app, clock


def _sums() -> dict[tuple[Any, ...], int]:
    columns = [case_tally.TABLE.c[name] for name in case_tally.KEY]
    rows = db.session.execute(select(*columns, func.sum(CaseTally.n)).group_by(*columns))
    return {tuple(r[:-1]): int(r[-1]) for r in rows if r[-1]}


def test_the_tally_stays_exact_under_concurrent_writers_and_compaction(pg_app: Any) -> None:
    app, _ = pg_app
    with app.app_context():
        version = db.session.scalar(select(HandbookVersion).where(
            HandbookVersion.handbook_key == "gas"))
        assert version is not None
        params = {"version": version.id, "process": version.process_id}
        db.session.execute(text(NEW_CASES), {**params, "prefix": "T0-", "n": CASES})
        db.session.commit()
        ids = list(db.session.scalars(text("SELECT id FROM warning_case")))
    stop = threading.Event()
    failures: list[BaseException] = []
    compactions = [0]

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with app.app_context():
                for n in range(60):
                    db.session.execute(text(rng.choice(CHANGES)), {"id": rng.choice(ids)})
                    if n % 20 == 0:
                        db.session.execute(text(NEW_CASES),
                                           {**params, "prefix": f"T{seed}-{n}-", "n": 5})
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    def compactor() -> None:
        try:
            with app.app_context():
                while not stop.is_set():
                    case_tally.compact()
                    db.session.commit()
                    compactions[0] += 1
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(1, 5)]
    summing = threading.Thread(target=compactor)
    summing.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stop.set()
    summing.join(timeout=60)
    assert not failures, failures
    assert compactions[0] > 3  # the sums really ran among the writes
    with app.app_context():
        assert sum(_sums().values()) == CASES + 4 * 3 * 5
        assert _sums() == case_tally.expected()
        case_tally.compact()
        db.session.commit()
        assert _sums() == case_tally.expected()
        assert case_tally.reconcile() == 0
