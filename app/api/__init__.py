"""JSON API: one error format ({"code", "message", "details"}), versioned under /api/v1."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import select, text

from app.extensions import db
from app.models import Heartbeat

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/health")
def health() -> tuple[Any, int]:
    """Liveness for monitoring (Art 13): database reachable, scheduler's last beat."""
    db.session.execute(text("SELECT 1"))
    beat = db.session.scalar(select(Heartbeat).where(Heartbeat.name == "scheduler"))
    now = current_app.extensions["clock"]()
    return jsonify({
        "status": "ok",
        "database": db.engine.dialect.name,
        "scheduler_last_beat": beat.beat_at.isoformat() if beat else None,
        "scheduler_age_seconds": round((now - beat.beat_at).total_seconds(), 1) if beat else None,
    }), 200
