"""JSON API: one error format ({"code", "message", "details"}), versioned under /api/v1."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import select, text

from app.api.alerts import bp as alerts_bp
from app.api.auth import bp as session_bp
from app.api.cases import bp as cases_bp
from app.api.openapi import bp as openapi_bp
from app.extensions import csrf, db
from app.models import Heartbeat

bp = Blueprint("api", __name__, url_prefix="/api/v1")

for _child in (alerts_bp, session_bp, cases_bp, openapi_bp):
    bp.register_blueprint(_child)
    # Flask-WTF's automatic check knows nested blueprints by object: exempt each one. The
    # session views check the X-CSRFToken header themselves; API keys need no CSRF.
    csrf.exempt(_child)


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
