"""On SQLite (the embedded default) the scheduler's jobs run one at a time: SQLite has one
writer, and jobs started together (the start-up runs, the hourly ones) would otherwise refuse
each other with "database is locked"."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from flask_migrate import upgrade

from app import create_app
from app.extensions import db


def test_jobs_do_not_overlap_on_sqlite(tmp_path: Path) -> None:
    app = create_app(DATABASE_URL=f"sqlite:///{tmp_path / 'ops.db'}",
                     SECRET_KEY="scheduler-test-secret-0123456789")
    with app.app_context():
        upgrade()
    running, most, finished = [0], [0], [0]
    done, lock = threading.Event(), threading.Lock()

    def counted() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
            finished[0] += 1
            if finished[0] == 3:
                done.set()

    from app.jobs import start_scheduler

    start_scheduler(app)
    scheduler = app.extensions["scheduler"]
    try:
        for n in range(3):
            scheduler.add_job(counted, id=f"together-{n}")
        assert done.wait(10)
    finally:
        scheduler.shutdown(wait=True)
        with app.app_context():
            db.engine.dispose()
    assert most[0] == 1
