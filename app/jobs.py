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


def start_scheduler(app: Flask) -> None:
    scheduler = new_scheduler()
    scheduler.add_job(heartbeat, "interval", args=[app], id="heartbeat",
                      seconds=app.config["SCHEDULER_HEARTBEAT_SECONDS"])
    scheduler.start()
    app.extensions["scheduler"] = scheduler
    # Beat once at start so the status page is right from the first request.
    scheduler.add_job(heartbeat, args=[app], id="heartbeat-now")
