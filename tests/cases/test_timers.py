"""Timers: reminders and escalations fire on time with a moved clock, once, across restarts."""

from __future__ import annotations

from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.jobs import fire_timers
from app.models import Case, CaseEvent, CaseTask, Notification
from app.services import timers


def _notes(app, case_no: str) -> list[tuple[str, int]]:
    with app.app_context():
        return [(n.kind, n.user_id) for n in db.session.scalars(
            select(Notification).join(Case, Notification.case_id == Case.id)
            .where(Case.case_no == case_no).order_by(Notification.id))]


def _next_timer(app, case_no: str):
    with app.app_context():
        return db.session.scalar(select(Case.next_timer_at).where(Case.case_no == case_no))


def test_missed_accept_reminds_then_escalates(app, published, point, send, people, drive,
                                              clock) -> None:
    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]  # yellow: accept 30 min
    drive(case_no, people, stop_at="Activity_accept")
    before = [k for k, _ in _notes(app, case_no)]
    due = _next_timer(app, case_no)
    assert due is not None
    clock.now = due  # exactly at the deadline nothing fires yet (strictly after)
    assert fire_timers(app) == 0
    clock.advance(seconds=1)
    assert fire_timers(app) == 1
    after_first = [k for k, _ in _notes(app, case_no)][len(before):]
    assert "reminder" in after_first
    reminded = {u for k, u in _notes(app, case_no) if k == "reminder"}
    assert people["responder"] in reminded
    # Keep missing it: the department head hears, then the supervision order comes.
    for _ in range(12):
        nxt = _next_timer(app, case_no)
        if nxt is None:
            break
        clock.now = nxt
        clock.advance(seconds=1)
        fire_timers(app)
        with app.app_context():
            supervise = db.session.scalar(select(CaseTask).join(Case).where(
                Case.case_no == case_no, CaseTask.status == "ready",
                CaseTask.element_id != "Activity_accept"))
        if supervise is not None:
            break
    kinds = [k for k, _ in _notes(app, case_no)]
    assert kinds.count("reminder") >= 2
    assert "escalation" in kinds
    assert supervise is not None and supervise.role in ("leader_in_charge", "department_head")


def test_a_timer_fires_once_even_when_two_workers_look(app, published, point, send, people,
                                                       drive, clock) -> None:
    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    drive(case_no, people, stop_at="Activity_accept")
    clock.now = _next_timer(app, case_no)
    clock.advance(seconds=1)
    with app.app_context():
        [case_id] = timers.due_case_ids(clock())
        assert timers.fire_case(case_id, clock()) is True
        db.session.commit()
        # A second worker that picked the same id a moment ago finds nothing left to fire.
        assert timers.fire_case(case_id, clock()) is False
    reminders = [k for k, _ in _notes(app, case_no) if k == "reminder"]
    assert len(reminders) == 1


def test_a_restart_loses_no_timer(app, published, point, send, people, drive, clock,
                                  database_url) -> None:
    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    drive(case_no, people, stop_at="Activity_accept")
    due = _next_timer(app, case_no)
    # A new process: a fresh application with an empty spec cache reads the stored state.
    restarted = create_app(DATABASE_URL=database_url, SECRET_KEY="restart-secret-0123456789",
                           clock=clock)
    clock.now = due
    clock.advance(seconds=1)
    assert fire_timers(restarted) == 1
    assert fire_timers(restarted) == 0
    with app.app_context():
        fired = db.session.scalars(select(CaseEvent.element_id).join(Case).where(
            Case.case_no == case_no, CaseEvent.kind == "task",
            CaseEvent.new_state == "COMPLETED")).all()
    assert any("remind" in (e or "").lower() for e in fired)
