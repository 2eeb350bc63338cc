"""Background jobs run by APScheduler inside the web process, each in its own transaction."""

from __future__ import annotations

from flask import Flask

from app.extensions import db, new_scheduler
from app.models import Heartbeat


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

    with app.app_context():
        try:
            fixed = stuck.retry_transient(app.extensions["clock"]())
            db.session.commit()
        except Exception:
            db.session.rollback()
            app.logger.exception("retrying stuck cases failed")
            fixed = 0
        finally:
            db.session.remove()
    return fixed


def deliver_outbound(app: Flask) -> None:
    """Send queued notifications to the webhook, when one is configured."""
    from app.services import notify

    url = app.config.get("NOTIFY_WEBHOOK_URL")
    if not url:
        return
    with app.app_context():
        notify.deliver_pending(notify.WebhookChannel(url), now=app.extensions["clock"]())
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

    with app.app_context():
        try:
            flagged = quality.scan_recent(app.extensions["clock"]()).flagged
            db.session.commit()
        except Exception:
            db.session.rollback()
            app.logger.exception("data-quality scan failed")
            flagged = 0
        finally:
            db.session.remove()
    return flagged


def scan_staffing(app: Flask) -> bool:
    """Once a day: list the lanes and towns with nobody in scope (a data-quality rule)."""
    from app.services import staffing

    with app.app_context():
        try:
            ran = staffing.scan_if_due(app.extensions["clock"]()) is not None
            db.session.commit()
        except Exception:
            db.session.rollback()
            app.logger.exception("staffing scan failed")
            ran = False
        finally:
            db.session.remove()
    return ran
