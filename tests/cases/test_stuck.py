"""No silent engine failure: a failed step marks the case stuck, visibly, and a retry moves it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import AuditRecord, Case, Role, User
from app.services import case_engine, stuck
from workflows import Runtime, StepResult, TimerInput
from workflows.runtime import TaskState

GAS = ("gas", "ch4_lel")


def _break_state(app: Flask, case_no: str) -> int:
    """Damage the stored state so the next step cannot load it (as a bad upgrade would)."""
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        state = dict(case.state)
        state["task_ids"] = "not a number"
        state["workflow"] = {"tasks": "damaged"}
        case.state = state
        db.session.commit()
        return case.id


def test_a_step_that_cannot_run_marks_the_case_stuck_and_intake_says_so(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], client: Any, as_role: Any, clock: Any) -> None:
    case_no = send(*GAS, 12, point("ST-1", "gas"))["case_no"]
    case_id = _break_state(app, case_no)
    outcome = send(*GAS, 120, "ST-1")
    assert outcome["disposition"] == "upgraded"  # the alert is stored
    assert outcome["step_failed"] is True and outcome["error"]
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case.stuck_since is not None and case.failure["kind"] == "state"
        assert case.highest_level == "red"
        assert stuck.count_stuck() == 1

    tech = as_role((Role.TECH_ADMIN, "district"))
    page = tech.get("/operations/stuck")
    assert page.status_code == 200 and case_no in page.text
    assert "卡住" in page.text or "Stuck" in page.text
    assert "卡住" in tech.get("/system/status").text or "Stuck" in tech.get("/system/status").text


def test_a_failed_script_is_retried_by_an_administrator_and_audited(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], as_role: Any, clock: Any,
        make_user: Callable[..., Any]) -> None:
    case_no = send(*GAS, 12, point("ST-2", "gas"))["case_no"]
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        loaded = case_engine.load(case)
        # The ready task ends in ERROR as a limit or script failure leaves it.
        task = loaded.instance.workflow.get_next_task(state=TaskState.READY, manual=True)
        failure = Runtime._mark_failed(task, "limit", "the step created too many tasks", None)
        result = StepResult([], TimerInput(clock()), failure)
        case_engine.record_step(loaded, result, now=clock())
        db.session.commit()
        assert case.stuck_since is not None
        case_id = case.id
    responder = as_role((Role.RESPONDER, "district"))
    assert responder.post(f"/operations/stuck/{case_id}/retry").status_code == 403
    tech_id = make_user((Role.TECH_ADMIN, "district"))["id"]
    with app.app_context():
        actor = db.session.get(User, tech_id)
        assert stuck.retry(actor, case_id, now=clock())
        db.session.commit()
        case = db.session.get(Case, case_id)
        assert case.stuck_since is None and case.error is None
        assert db.session.scalar(select(AuditRecord).where(AuditRecord.action == "case.retry"))


def _fail_ready_task(app: Flask, case_no: str, kind: str, clock: Any) -> int:
    """The case's ready task ends in ERROR as a failure of `kind` leaves it."""
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        loaded = case_engine.load(case)
        task = loaded.instance.workflow.get_next_task(state=TaskState.READY, manual=True)
        failure = Runtime._mark_failed(task, kind, "the script was stopped after 1 s", None)
        case_engine.record_step(loaded, StepResult([], TimerInput(clock()), failure),
                                now=clock())
        db.session.commit()
        return case.id


def test_a_time_budget_stop_is_retried_by_the_scheduler_after_a_pause(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any) -> None:
    timeout_case = _fail_ready_task(app, send(*GAS, 12, point("ST-3", "gas"))["case_no"],
                                    "timeout", clock)
    script_case = _fail_ready_task(app, send(*GAS, 12, point("ST-4", "gas"))["case_no"],
                                   "script", clock)
    with app.app_context():
        assert stuck.retry_transient(clock()) == 0  # not before the first pause
        clock.advance(minutes=2)
        assert stuck.retry_transient(clock()) == 1
        db.session.commit()
        assert db.session.get(Case, timeout_case).stuck_since is None
        assert db.session.get(Case, script_case).stuck_since is not None  # waits for a person


def test_a_state_that_loads_again_is_no_longer_stuck_after_a_retry(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any,
        make_user: Callable[..., Any]) -> None:
    case_no = send(*GAS, 12, point("ST-5", "gas"))["case_no"]
    with app.app_context():
        good = dict(db.session.scalar(select(Case).where(Case.case_no == case_no)).state)
    case_id = _break_state(app, case_no)
    send(*GAS, 120, "ST-5")
    tech_id = make_user((Role.TECH_ADMIN, "district"))["id"]
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case.failure["kind"] == "state"
        case.state = good  # the state is repaired
        db.session.commit()
        assert stuck.retry(db.session.get(User, tech_id), case_id, now=clock())
        db.session.commit()
        assert db.session.get(Case, case_id).stuck_since is None
