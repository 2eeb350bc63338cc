"""Runtime figures of the system itself (Art 13), read from the database when asked: what
/metrics exposes to Prometheus and the status page shows to technical administrators."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import Alert, Case, DeadLetter, Heartbeat

# A timer due for longer than this has not been fired in time: the scheduler is behind.
TIMER_LATE_AFTER = timedelta(seconds=60)


@dataclass
class RuntimeFigures:
    alerts_by_disposition: dict[str, int] = field(default_factory=dict)
    cases_by_state: dict[str, int] = field(default_factory=dict)
    stuck_cases: int = 0
    timers_due: int = 0
    timers_late: int = 0
    heartbeat_age_s: dict[str, float] = field(default_factory=dict)
    mqtt_lag_s: float | None = None
    mqtt_queued: int | None = None
    dead_letters: int = 0
    silent_points: int = 0
    silent_sources: int = 0
    pool: dict[str, int] = field(default_factory=dict)


def _pool() -> dict[str, int]:
    pool = db.engine.pool
    out: dict[str, int] = {}
    for name in ("size", "checkedout", "overflow", "checkedin"):
        method = getattr(pool, name, None)
        if callable(method):
            try:
                out[name] = int(method())
            except (TypeError, ValueError):
                continue
    return out


def collect(now: datetime) -> RuntimeFigures:
    """A handful of aggregate queries; test cases of draft handbooks are left out."""
    from app.services import feeds

    figures = RuntimeFigures()
    figures.alerts_by_disposition = {d: int(n) for d, n in db.session.execute(
        select(Alert.disposition, func.count()).group_by(Alert.disposition)).tuples()}
    real = Case.is_test.is_(False)
    figures.cases_by_state = {s: int(n) for s, n in db.session.execute(
        select(Case.status, func.count()).where(real).group_by(Case.status)).tuples()}
    figures.stuck_cases = int(db.session.scalar(select(func.count()).select_from(Case).where(
        real, Case.stuck_since.is_not(None))) or 0)
    due = select(func.count()).select_from(Case).where(real, Case.status == "open")
    figures.timers_due = int(db.session.scalar(due.where(Case.next_timer_at <= now)) or 0)
    figures.timers_late = int(db.session.scalar(
        due.where(Case.next_timer_at <= now - TIMER_LATE_AFTER)) or 0)
    for beat in db.session.scalars(select(Heartbeat)):
        figures.heartbeat_age_s[beat.name] = max(0.0, (now - beat.beat_at).total_seconds())
        if beat.name == "mqtt" and beat.detail:
            try:
                detail = json.loads(beat.detail)
                figures.mqtt_lag_s = float(detail.get("lag_s", 0.0))
                figures.mqtt_queued = int(detail.get("queued", 0))
            except (ValueError, TypeError, AttributeError):
                pass
    figures.dead_letters = int(db.session.scalar(
        select(func.count()).select_from(DeadLetter)) or 0)
    summary = feeds.silent_summary(now)
    figures.silent_points, figures.silent_sources = summary["points"], summary["sources"]
    figures.pool = _pool()
    return figures
