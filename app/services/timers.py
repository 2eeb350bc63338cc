"""Firing due timers: reminders, escalations and deadlines never wait for a person to act.

SpiffWorkflow never fires timers by itself; this finds cases whose next timer is due, fires
them and stores the step. On PostgreSQL the rows are taken with FOR UPDATE SKIP LOCKED, so
several workers share the work and none fires the same timer twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import Case
from app.services import case_engine, notify, stuck


def due_case_ids(now: datetime, *, limit: int = 100) -> list[int]:
    """Open cases with a timer due before `now`, earliest first (engine fires strictly after)."""
    return list(db.session.scalars(
        select(Case.id).where(Case.status == "open", Case.is_test.is_(False),
                              Case.next_timer_at < now)
        .order_by(Case.next_timer_at).limit(limit)))


def fire_case(case_id: int, now: datetime) -> bool:
    """Fire the due timers of one case under a row lock; False if another worker has it."""
    case = db.session.scalar(
        select(Case).where(Case.id == case_id, Case.status == "open", Case.is_test.is_(False),
                           Case.next_timer_at < now)
        .with_for_update(skip_locked=True, of=Case))
    if case is None:
        return False
    loaded = stuck.load_or_mark(case, now=now)
    if loaded is None:
        case.next_timer_at = None  # nothing fires until a retry brings the state back
        db.session.flush()
        return True
    result = loaded.instance.fire_timers(at=now)
    completed = case_engine.record_step(loaded, result, now=now)
    notify.after_step(case, completed, now=now)
    db.session.flush()
    return True
