"""A level change brings every deadline of a case to the new level's limits.

Limits count from the push (the case's opening) and timers from when they were armed, so an
upgraded case must end up with exactly the deadlines of a case opened at the new level at the
same moment: case due time, every waiting timer, open tasks' level and due time, tracking cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseTask
from app.services import case_engine

GAS = ("gas", "ch4_lel")


def _deadlines(case_no: str) -> dict[str, Any]:
    case = db.session.scalar(select(Case).where(Case.case_no == case_no))
    instance = case_engine.load(case).instance
    tasks = db.session.scalars(select(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status == "ready").order_by(CaseTask.id)).all()
    data = instance.data
    return {
        "level": case.level, "highest": case.highest_level, "due_at": case.due_at,
        "next_timer_at": case.next_timer_at,
        "timers": sorted((w.element_id, w.due) for w in instance.waiting_events()
                         if w.kind == "timer"),
        "tasks": [(t.element_id, t.level, t.due_at) for t in tasks],
        "limits": {k: data.get(k) for k in ("accept_limit", "on_site_limit", "feedback_limit",
                                            "close_limit", "tracking_cycle", "reminder_cycle")},
    }


def test_an_upgraded_case_has_the_deadlines_of_one_opened_at_that_level(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any) -> None:
    upgraded = send(*GAS, 12, point("GU-1", "gas"))["case_no"]
    opened_red = send(*GAS, 120, point("GU-2", "gas"))["case_no"]
    clock.advance(minutes=1)
    assert send(*GAS, 120, "GU-1")["disposition"] == "upgraded"
    with app.app_context():
        after, reference = _deadlines(upgraded), _deadlines(opened_red)
    assert after["level"] == after["highest"] == "red"
    assert after["limits"] == reference["limits"], str((after["limits"], reference["limits"]))
    assert after == reference


def test_the_upgraded_case_is_overdue_when_the_red_one_is(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any) -> None:
    from app.services import timers

    upgraded = send(*GAS, 12, point("GV-1", "gas"))["case_no"]
    clock.advance(minutes=30)
    send(*GAS, 120, "GV-1")
    clock.advance(minutes=1)
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == upgraded))
        # Red limits count from the push 31 minutes ago: within the hour, not in three days.
        assert case.next_timer_at is not None
        assert (case.next_timer_at - case.opened_at).total_seconds() <= 3600
        assert (case.due_at - case.opened_at).total_seconds() <= 3600
    clock.advance(minutes=40)
    with app.app_context():
        assert timers.fire_case(case.id, clock())
        db.session.commit()
        assert db.session.get(Case, case.id).error is None
