"""From a sensor's alarm to a closed, audited case: grouping, routing, actions, history."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Alert, Case, CaseEvent, CaseTask, Notification, Role, User
from app.services import case_engine, cases
from app.services.errors import Conflict, Forbidden, ValidationFailed
from cases_fixtures import ready_task


def _case(app, case_no: str) -> Case:
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        db.session.expunge_all()
        return case


def test_a_gas_alarm_runs_to_a_closed_case(app, published, point, send, people, drive):
    point("GAS-MH-0001", "gas")
    outcome = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    assert outcome["disposition"] == "opened" and outcome["level"] == "yellow"
    assert outcome["case_no"] == "RQ-2026-000001"
    done = drive(outcome["case_no"], people)
    assert done[:2] == ["Activity_assessment", "Activity_accept"]
    assert "Activity_dispose" in done
    assert "Activity_valve_closure" not in done  # the handbook keeps it for red and orange
    assert done[-3:] == ["Activity_cancel_warning", "Activity_feedback", "Activity_verify"]
    case = _case(app, outcome["case_no"])
    assert case.status == "closed" and case.closed_at is not None
    assert case.accepted_at is not None
    with app.app_context():
        case = db.session.get(Case, case.id)
        events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                    .order_by(CaseEvent.seq)).all()
        assert case_engine.chain_intact(events) is None
        completed_by = {e.element_id: e.actor_name for e in events
                        if e.kind == "task" and e.new_state == "COMPLETED"}
        assert completed_by["Activity_accept"] == "rs.ljz"
        # The auditor's replay reaches exactly the stored state.
        replayed = case_engine.verify_replay(case)
        assert replayed.finished
        assert db.session.scalar(select(func.count()).select_from(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.status == "ready")) == 0


def test_the_town_comes_from_the_point_registry(app, published, point, send):
    point("GAS-MH-0022", "gas", town="town.22")
    outcome = send("gas", "ch4_lel", 30.0, "GAS-MH-0022")
    case = _case(app, outcome["case_no"])
    with app.app_context():
        assert db.session.get(Case, case.id).node.name == "张江镇"


def test_unknown_points_are_accepted_and_flagged(app, published, send):
    outcome = send("gas", "ch4_lel", 30.0, "NOT-REGISTERED")
    assert outcome["unknown_point"] is True and outcome["disposition"] == "opened"
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == outcome["case_no"]))
        assert case.node.code == "scenario.gas"


def test_repeats_group_into_the_open_case(app, published, point, send, clock):
    point("GAS-MH-0001", "gas")
    first = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    clock.advance(minutes=2)
    again = send("gas", "ch4_lel", 32.0, "GAS-MH-0001")
    assert again["disposition"] == "grouped" and again["case_no"] == first["case_no"]
    case = _case(app, first["case_no"])
    assert case.alert_count == 2 and case.last_value == 32.0
    assert case.last_seen == clock()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Case)) == 1


def test_a_higher_reading_upgrades_the_running_process(app, published, point, send, people,
                                                        drive, clock):
    point("GAS-MH-0001", "gas")
    first = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    drive(first["case_no"], people, stop_at="Activity_dispose")
    clock.advance(minutes=1)
    upgraded = send("gas", "ch4_lel", 60.0, "GAS-MH-0001")
    assert upgraded["disposition"] == "upgraded"
    case = _case(app, first["case_no"])
    assert case.highest_level == "orange" and case.level == "orange"
    with app.app_context():
        state = db.session.get(Case, case.id).state
        assert '"level": "orange"' in str(state).replace("'", '"')
        notes = db.session.scalars(select(Notification.kind).where(
            Notification.case_id == case.id)).all()
    assert "level_upgrade" in notes
    assert drive(first["case_no"], people)[-1] == "Activity_verify"
    assert _case(app, first["case_no"]).status == "closed"


def test_back_to_normal_reaches_the_process(app, published, point, send, people, drive):
    point("GAS-MH-0001", "gas")
    first = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    drive(first["case_no"], people, stop_at="Activity_dispose")
    normal = send("gas", "ch4_lel", 1.0, "GAS-MH-0001")
    assert normal["disposition"] == "back_to_normal"
    with app.app_context():
        kinds = db.session.scalars(select(Notification.kind).where(
            Notification.case_id == _case(app, first["case_no"]).id)).all()
    assert "back_to_normal" in kinds


def test_readings_below_threshold_are_kept_but_open_nothing(app, published, point, send):
    point("GAS-MH-0001", "gas")
    outcome = send("gas", "ch4_lel", 2.0, "GAS-MH-0001")
    assert outcome["disposition"] == "below_threshold" and outcome["case_no"] is None
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Alert)) == 1
        assert db.session.scalar(select(func.count()).select_from(Case)) == 0


def test_a_false_alarm_ends_the_case(app, published, point, send, people, drive):
    point("GAS-MH-0001", "gas")
    outcome = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    done = drive(outcome["case_no"], people,
                 answers={"Activity_assessment": {"verdict": "false_alarm"}})
    assert done == ["Activity_assessment"]
    case = _case(app, outcome["case_no"])
    assert case.status == "false_alarm" and case.outcome == "false_alarm"
    # A new alarm at the same point opens a new case, not a closed one.
    again = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    assert again["disposition"] == "opened" and again["case_no"] != outcome["case_no"]


def test_claim_release_and_who_may_act(app, published, point, send, people, drive, make_user,
                                       clock):
    point("GAS-MH-0001", "gas")
    outcome = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    drive(outcome["case_no"], people, stop_at="Activity_accept")
    task = ready_task(app, outcome["case_no"])
    assert task.element_id == "Activity_accept" and task.role == "responder"
    other_town = make_user((Role.RESPONDER, "town.22"))["id"]
    colleague = make_user((Role.RESPONDER, "town.02"))["id"]
    with app.app_context():
        with pytest.raises(Forbidden):
            cases.claim(db.session.get(User, other_town), task.id, now=clock())
        with pytest.raises(Forbidden):  # right area, wrong role
            cases.claim(db.session.get(User, people["business_admin"]), task.id, now=clock())
        cases.claim(db.session.get(User, people["responder"]), task.id, now=clock())
        db.session.commit()
        with pytest.raises(Conflict) as claimed:
            cases.complete(db.session.get(User, colleague), task.id, {"accepted": True},
                           now=clock())
        assert claimed.value.code == "claimed_by_other"
        with pytest.raises(Conflict):
            cases.release(db.session.get(User, colleague), task.id, now=clock())
        cases.release(db.session.get(User, people["responder"]), task.id, now=clock())
        db.session.commit()
        with pytest.raises(ValidationFailed) as err:
            cases.complete(db.session.get(User, colleague), task.id, {"eta_minutes": "soon"},
                           now=clock())
        assert "eta_minutes" in err.value.details
        db.session.rollback()


def test_completing_a_task_twice_is_a_conflict(app, published, point, send, people, drive,
                                               clock):
    point("GAS-MH-0001", "gas")
    outcome = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    drive(outcome["case_no"], people, stop_at="Activity_accept")
    task = ready_task(app, outcome["case_no"])
    drive(outcome["case_no"], people, stop_at="Activity_dispose")
    with app.app_context():
        with pytest.raises(Conflict) as gone:
            cases.complete(db.session.get(User, people["responder"]), task.id,
                           {"accepted": True}, now=clock())
        assert gone.value.code == "task_gone"
        assert "该任务已由" in str(gone.value.message)


def test_running_cases_keep_their_handbook_version(app, published, point, send, people, drive,
                                                   clock, tmp_path):
    """Art 7: a new version is used by new cases; a running case finishes on its own."""
    import json
    import shutil
    from pathlib import Path

    from app.models import HandbookVersion, User
    from app.services import handbooks

    point("GAS-MH-0001", "gas")
    point("GAS-MH-0002", "gas")
    first = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    drive(first["case_no"], people, stop_at="Activity_dispose")
    root = tmp_path / "repo"
    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "bpmn", root / "bpmn")
    shutil.copytree(repo / "handbooks", root / "handbooks")
    path = root / "handbooks" / "scenarios" / "gas.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["time_limits"]["yellow"]["accept"] = "PT20M"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with app.app_context():
        writer = db.session.scalar(select(User).where(User.username == "hb.writer"))
        reviewer = db.session.scalar(select(User).where(User.username == "hb.reviewer"))
        [v2] = handbooks.deploy(author=writer, now=clock(), root=root, note="接单时限调整").created
        handbooks.submit_for_review(writer, v2.id, note="", now=clock())
        # The changed limit is an inferred value: the reviewer confirms it before approving.
        from app.services import handbook_data_form

        handbook_data_form.confirm(reviewer, v2.id, "time_limits.yellow", now=clock())
        handbooks.approve(reviewer, v2.id, comment="同意", now=clock())
        db.session.commit()
        v2_id = v2.id
    second = send("gas", "ch4_lel", 30.0, "GAS-MH-0002")
    old, new = _case(app, first["case_no"]), _case(app, second["case_no"])
    assert new.handbook_version_id == v2_id and old.handbook_version_id != v2_id
    with app.app_context():
        assert db.session.get(HandbookVersion, old.handbook_version_id).status.value == "retired"
    assert drive(first["case_no"], people)[-1] == "Activity_verify"
    assert _case(app, first["case_no"]).status == "closed"


def test_a_batch_keeps_its_order_and_groups_repeats_set_wise(app, published, point, clock,
                                                            source_key):
    from app.models import ApiKey
    from app.services.intake import AlertIn
    from app.services.intake_batches import ingest_many

    point("GAS-MH-0001", "gas")
    point("GAS-MH-0002", "gas")
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        t = clock()
        batch = [AlertIn("gas", "ch4_lel", "GAS-MH-0001", 30.0, t),   # opens a case
                 AlertIn("gas", "ch4_lel", "GAS-MH-0001", 31.0, t),   # plain repeat
                 AlertIn("gas", "ch4_lel", "GAS-MH-0002", 2.0, t),    # below threshold
                 AlertIn("gas", "ch4_lel", "GAS-MH-0001", 33.0, t),   # plain repeat
                 AlertIn("gas", "ch4_lel", "GAS-MH-0001", 60.0, t),   # upgrade: full path
                 AlertIn("gas", "ch4_lel", "GAS-MH-0001", 55.0, t)]   # repeat after upgrade
        outcomes = ingest_many(key, batch, now=t)
        db.session.commit()
        assert [o.disposition for o in outcomes] == [
            "opened", "grouped", "below_threshold", "grouped", "upgraded", "grouped"]
        case_nos = {o.case_no for o in outcomes if o.case_no}
        assert len(case_nos) == 1
        case = db.session.scalar(select(Case))
        assert case.alert_count == 5 and case.last_value == 55.0
        assert case.highest_level == "orange"
        assert db.session.scalar(select(func.count()).select_from(Alert)) == 6


def test_escalation_to_the_big_loop_reaches_other_departments(app, published, point, send,
                                                              drive, make_user, clock):
    """Big loop (DOMAIN §4): 应急管理局 convenes, each involved department disposes, the
    leader in charge hears, the case returns to closure."""
    from app.services.errors import Forbidden

    point("GAS-MH-0001", "gas")
    outcome = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    people = {
        "business_admin": make_user((Role.BUSINESS_ADMIN, "scenario.gas"))["id"],
        "responder": make_user((Role.RESPONDER, "town.02"))["id"],
        "department_head": make_user((Role.DEPARTMENT_HEAD, "industry.construction"))["id"],
        "leader_in_charge": make_user((Role.LEADER_IN_CHARGE, "industry.construction"))["id"],
    }
    emergency = make_user((Role.BUSINESS_ADMIN, "industry.emergency"))["id"]
    drive(outcome["case_no"], people, stop_at="Activity_convene",
          answers={"Activity_dispose": {"escalate": "big", "escalate_reason": "多处泄漏"}})
    convene = ready_task(app, outcome["case_no"])
    assert convene.element_id == "Activity_convene" and convene.role == "business_admin"
    with app.app_context():
        gas_admin = db.session.get(User, people["business_admin"])
        with pytest.raises(Forbidden):
            cases.claim(gas_admin, convene.id, now=clock())
        # The emergency bureau's administrator reaches the case through the task.
        boss = db.session.get(User, emergency)
        assert cases.get_case(boss, convene.case_id).case_no == outcome["case_no"]
        case = db.session.get(Case, convene.case_id)
        fields = case_engine.load(case).compiled.form_fields(convene.process_id,
                                                             convene.element_id)
        from cases_fixtures import fill_form

        cases.complete(boss, convene.id, fill_form(fields, {
            "involved_departments": "construction,emergency"}), now=clock())
        db.session.commit()
    # Everyone else in the loop: a district-wide administrator stands in for the departments.
    people["business_admin"] = make_user((Role.BUSINESS_ADMIN, "district"))["id"]
    done = drive(outcome["case_no"], people)
    assert "Activity_department_disposal_construction" in done
    assert "Activity_department_disposal_emergency" in done
    assert "Activity_report_leader" in done and "Activity_close_big_loop" in done
    assert done[-1] == "Activity_verify"
    assert _case(app, outcome["case_no"]).status == "closed"


def test_case_history_cannot_be_rewritten_unnoticed(app, dbconn, published, point, send):
    """Append-only in the database; past that guard, the hash chain names the changed event."""
    import sqlalchemy as sa

    point("GAS-MH-0001", "gas")
    case_no = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with dbconn.begin_nested():
            dbconn.execute(sa.text("UPDATE case_event SET actor_name = 'someone'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with dbconn.begin_nested():
            dbconn.execute(sa.text("DELETE FROM case_event"))
    if dbconn.dialect.name == "postgresql":
        dbconn.execute(sa.text("DROP TRIGGER case_event_no_update ON case_event"))
    else:
        dbconn.execute(sa.text("DROP TRIGGER case_event_no_update"))
    dbconn.execute(sa.text("UPDATE case_event SET actor_name = 'someone' WHERE seq = 3"))
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                    .order_by(CaseEvent.seq)).all()
        assert case_engine.chain_intact(events) == 3
