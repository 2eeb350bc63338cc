"""Background jobs run by APScheduler inside the web process, each in its own transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from flask import Flask

from app.extensions import db, new_scheduler
from app.models import Heartbeat

T = TypeVar("T")


def _in_transaction(app: Flask, what: str, work: Callable[[datetime], T], failed: T) -> T:
    """Run `work(now)` in one committed transaction; on error roll back, log and answer
    `failed`, so one bad run never stops the scheduler."""
    with app.app_context():
        try:
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
    """Prove the scheduler is alive; the technical administrators' status page reads this."""
    with app.app_context():
        now = app.extensions["clock"]()
        row = db.session.get(Heartbeat, name)
        if row is None:
            db.session.add(Heartbeat(name=name, beat_at=now, detail=""))
        else:
            row.beat_at = now
        db.session.commit()


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

    return _in_transaction(app, "retrying stuck cases", stuck.retry_transient, 0)


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
    scheduler = new_scheduler()
    scheduler.add_job(heartbeat, "interval", args=[app], id="heartbeat",
                      seconds=app.config["SCHEDULER_HEARTBEAT_SECONDS"])
    scheduler.add_job(fire_timers, "interval", args=[app], id="timers",
                      seconds=app.config["TIMER_POLL_SECONDS"])
    scheduler.add_job(deliver_outbound, "interval", args=[app], id="outbound", seconds=15)
    scheduler.add_job(retry_stuck, "interval", args=[app], id="stuck", seconds=30)
    scheduler.add_job(scan_quality, "interval", args=[app], id="quality", hours=1)
    # Daily; asked hourly so a restart does not push it back a day.
    scheduler.add_job(scan_staffing, "interval", args=[app], id="staffing", hours=1)
    scheduler.start()
    app.extensions["scheduler"] = scheduler
    # Beat once at start so the status page is right from the first request.
    scheduler.add_job(heartbeat, args=[app], id="heartbeat-now")


def scan_quality(app: Flask) -> int:
    """Check the cases closed since the previous run against the data-quality rules (Art 9)."""
    from app.services import quality

    return _in_transaction(app, "data-quality scan",
                           lambda now: quality.scan_recent(now).flagged, 0)


def scan_staffing(app: Flask) -> bool:
    """Once a day: list the lanes and towns with nobody in scope (a data-quality rule)."""
    from app.services import staffing

    return _in_transaction(app, "staffing scan",
                           lambda now: staffing.scan_if_due(now) is not None, False)
