"""Background jobs run by APScheduler, each in its own transaction.

A scheduler runs in its own process (`flask scheduler run`) or, for `make run`, inside the
development server. On PostgreSQL several schedulers may run at once: timers and outbound
messages are claimed row by row with FOR UPDATE SKIP LOCKED, and every other periodic job runs
under a transaction-level advisory lock, so exactly one scheduler does each run and the others
skip it. SQLite has no such locks: one scheduler process per database (see `single_scheduler`).
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from datetime import datetime
from typing import IO, TypeVar

from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.extensions import db, new_scheduler
from app.models import Heartbeat
from app.timezone import local_zone

T = TypeVar("T")


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key per job name."""
    return int.from_bytes(hashlib.sha256(f"ops.job.{name}".encode()).digest()[:8], "big",
                          signed=True)


def claim_job(name: str) -> bool:
    """Take the job `name` for this transaction: True if no other scheduler runs it now.

    On PostgreSQL a transaction-level advisory lock (released at commit or rollback, also when
    the process dies); on SQLite always True (one scheduler process per database file).
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return True
    return bool(db.session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                  {"key": _lock_key(name)}))


def _in_transaction(app: Flask, what: str, work: Callable[[datetime], T], failed: T,
                    exclusive: str | None = None) -> T:
    """Run `work(now)` in one committed transaction; on error roll back, log and answer
    `failed`, so one bad run never stops the scheduler. With `exclusive`, only one scheduler
    at a time runs it; the others answer `failed` without running it."""
    with app.app_context():
        try:
            if exclusive is not None and not claim_job(exclusive):
                return failed
            result = work(app.extensions["clock"]())
            db.session.commit()
        except Exception:
            db.session.rollback()
            app.logger.exception("%s failed", what)
            result = failed
        finally:
            db.session.remove()
    return result


def heartbeat(app: Flask, name: str = "scheduler") -> None:
    """Prove a scheduler is alive; the technical administrators' status page reads this. With
    several schedulers the row says which one beat last."""
    detail = f"{socket.gethostname()}:{os.getpid()}"[:200]
    with app.app_context():
        now = app.extensions["clock"]()
        row = db.session.get(Heartbeat, name)
        try:
            if row is None:
                db.session.add(Heartbeat(name=name, beat_at=now, detail=detail))
            else:
                row.beat_at, row.detail = now, detail
            db.session.commit()
        except IntegrityError:  # two schedulers' first beats at once: the other one wrote it
            db.session.rollback()
        finally:
            db.session.remove()


def fire_timers(app: Flask, batch: int = 200) -> int:
    """Fire every due case timer, one transaction per case so one failure blocks nothing."""
    from app.services import timers

    fired = 0
    with app.app_context():
        now = app.extensions["clock"]()
        for case_id in timers.due_case_ids(now, limit=batch):
            try:
                if timers.fire_case(case_id, now):
                    fired += 1
                db.session.commit()
            except Exception:
                db.session.rollback()
                app.logger.exception("firing timers of case %s failed", case_id)
        db.session.remove()
    return fired


def retry_stuck(app: Flask) -> int:
    """Retry stuck cases whose failure may pass by itself (see services.stuck)."""
    from app.services import stuck

    return _in_transaction(app, "retrying stuck cases", stuck.retry_transient, 0,
                           exclusive="stuck")


def deliver_outbound(app: Flask) -> None:
    """Send queued notifications to the webhook and work-chat robots that are configured."""
    from app.services import notify

    channels = notify.channels_from(app.config)
    if not channels:
        return
    with app.app_context():
        notify.deliver_pending(channels, now=app.extensions["clock"]())
        db.session.commit()


def start_scheduler(app: Flask) -> None:
    # SQLite has a single writer: jobs started together (the start-up runs, the hourly ones)
    # would refuse each other with "database is locked", so there they run one at a time.
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
    scheduler = new_scheduler(workers=1 if sqlite else 10)
    scheduler.add_job(heartbeat, "interval", args=[app], id="heartbeat",
                      seconds=app.config["SCHEDULER_HEARTBEAT_SECONDS"])
    scheduler.add_job(fire_timers, "interval", args=[app], id="timers",
                      seconds=app.config["TIMER_POLL_SECONDS"])
    scheduler.add_job(deliver_outbound, "interval", args=[app], id="outbound", seconds=15)
    scheduler.add_job(retry_stuck, "interval", args=[app], id="stuck", seconds=30)
    scheduler.add_job(scan_quality, "interval", args=[app], id="quality", hours=1)
    scheduler.add_job(scan_feeds, "interval", args=[app], id="feeds", minutes=1)
    scheduler.add_job(snapshot_coverage, "interval", args=[app], id="coverage", hours=1)
    # Daily; asked hourly so a restart does not push it back a day.
    scheduler.add_job(scan_staffing, "interval", args=[app], id="staffing", hours=1)
    scheduler.add_job(maintain_partitions, "interval", args=[app], id="partitions", hours=6)
    # Monthly reports on the 1st, annual ones in January; asked hourly and idempotent, so a
    # scheduler that was down on the 1st makes them when it comes back.
    scheduler.add_job(generate_reports, "interval", args=[app], id="reports", hours=1)
    scheduler.add_job(compact_case_tally, "interval", args=[app], id="case-tally", minutes=1)
    # The whole check locks case writes for a few seconds at a million cases: at night.
    scheduler.add_job(reconcile_case_tally, "cron", args=[app], id="case-tally-check",
                      hour=3, minute=40, timezone=local_zone())
    scheduler.start()
    app.extensions["scheduler"] = scheduler
    # Beat once at start so the status page is right from the first request; make sure the
    # coming months have their partitions.
    scheduler.add_job(heartbeat, args=[app], id="heartbeat-now")
    scheduler.add_job(maintain_partitions, args=[app], id="partitions-now")
    scheduler.add_job(generate_reports, args=[app], id="reports-now")


class SchedulerRunning(RuntimeError):
    """Another scheduler already serves this SQLite database."""


def single_scheduler(app: Flask) -> IO[str] | None:
    """On SQLite, hold an exclusive lock on a file beside the database for the life of the
    process, so a second scheduler on the same file refuses to start (SQLite has no row locks
    to share timers with). Returns the open lock file (keep it), or None on PostgreSQL."""
    import fcntl
    from pathlib import Path

    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).with_suffix(".scheduler.lock")
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SchedulerRunning(str(path)) from None
    return handle


def scan_quality(app: Flask) -> int:
    """Check the cases closed since the previous run against the data-quality rules (Art 9)."""
    from app.services import quality

    return _in_transaction(app, "data-quality scan",
                           lambda now: quality.scan_recent(now).flagged, 0, exclusive="quality")


def scan_staffing(app: Flask) -> bool:
    """Once a day: list the lanes and towns with nobody in scope (a data-quality rule)."""
    from app.services import staffing

    return _in_transaction(app, "staffing scan",
                           lambda now: staffing.scan_if_due(now) is not None, False,
                           exclusive="staffing")


def maintain_partitions(app: Flask) -> list[str]:
    """Keep the monthly partitions of alerts and case history ready ahead, and drop months
    beyond `LOG_RETENTION_MONTHS` when it is set (PostgreSQL; nothing on SQLite)."""
    from app.services import partitions

    def work(now: datetime) -> list[str]:
        done = partitions.maintain(db.session.connection(), now,
                                   retention_months=app.config["LOG_RETENTION_MONTHS"])
        if done.created or done.dropped:
            app.logger.info("partitions created %s, dropped %s", done.created, done.dropped)
        return done.created + done.dropped

    return _in_transaction(app, "partition upkeep", work, [], exclusive="partitions")


def scan_feeds(app: Flask) -> int:
    """Open outages for points silent beyond their interval and sources that stopped."""
    from app.services import feeds

    return _in_transaction(app, "feed-health scan", lambda now: feeds.scan(now).opened, 0,
                           exclusive="feeds")


def snapshot_coverage(app: Flask) -> int:
    """Keep the day's coverage figures (Art 12); hourly, so the day's last run wins."""

    from app.services import coverage

    return _in_transaction(app, "coverage snapshot", lambda now: coverage.snapshot(
        now, now.astimezone(local_zone()).date()), 0, exclusive="coverage")


def compact_case_tally(app: Flask) -> int:
    """Sum the case list's counts kept by triggers (rows of +1 and -1) into one per key."""
    from app.services import case_tally

    return _in_transaction(app, "case tally compaction", lambda now: case_tally.compact(), 0,
                           exclusive="case-tally")


def reconcile_case_tally(app: Flask) -> int:
    """Check the case list's counts against the cases; a difference is logged and put right."""
    from app.services import case_tally

    def work(now: datetime) -> int:
        wrong = case_tally.reconcile()
        if wrong:
            app.logger.warning("case tally: %d keys differed from the cases; put right", wrong)
        return wrong

    return _in_transaction(app, "case tally check", work, 0, exclusive="case-tally")


def generate_reports(app: Flask) -> int:
    """Create the monthly (and in January the annual) reports due for every platform level."""
    from app.services import reports

    return _in_transaction(app, "report generation",
                           lambda now: len(reports.generate_due(now)), 0,
                           exclusive="reports")
