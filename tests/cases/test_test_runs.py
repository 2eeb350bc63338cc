"""Test runs of a draft: a test case from a sample alert, tasks completed with the real form
rules, timers fired by the run's own clock, never in inboxes, lists, notices or figures, and
deletable with its history (audited)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditRecord,
    Case,
    CaseEvent,
    CaseTask,
    HandbookTestRun,
    HandbookVersion,
    Notification,
    Role,
    User,
    VersionStatus,
)
from app.services import inbox, overdue, quality, stuck, test_runs, timers
from app.services.errors import Conflict, Forbidden, ValidationFailed
from cases_fixtures import ANSWERS, draft_of, fill_form
from helpers import Api

GAS_ITEM = "GAS-CH4-MANHOLE"


@pytest.fixture
def designer(make_user) -> dict[str, Any]:
    return make_user((Role.BUSINESS_ADMIN, "scenario.gas"), username="designer")


@pytest.fixture
def gas_draft(app, published, clock) -> int:
    with app.app_context():
        version_id = draft_of("gas", clock())
        db.session.commit()
        return version_id


def _start(app, clock, designer, version_id, level="yellow", **kw) -> int:
    with app.app_context():
        actor = db.session.get(User, designer["id"])
        run = test_runs.start_run(actor, version_id, test_runs.SampleAlert(
            item_code=kw.pop("item", GAS_ITEM), level=level, value=kw.pop("value", None),
            town=kw.pop("town", "town.02")), now=clock(), **kw)
        db.session.commit()
        return run.id


def _complete_ready(app, designer, run_id, answers=None) -> str:
    with app.app_context():
        run = db.session.get(HandbookTestRun, run_id)
        task = test_runs.open_tasks(run)[0]
        fields = test_runs.case_engine.load(run.case).compiled.form_fields(task.process_id,
                                                                          task.element_id)
        given = (answers or ANSWERS).get(task.element_id, {})
        test_runs.complete_task(db.session.get(User, designer["id"]), run_id, task.id,
                                fill_form(fields, given))
        db.session.commit()
        return task.element_id


def test_a_test_run_starts_a_test_case_on_the_draft(app, gas_draft, designer, clock):
    run_id = _start(app, clock, designer, gas_draft, note="试一下黄色")
    with app.app_context():
        run = db.session.get(HandbookTestRun, run_id)
        assert run.case.is_test and run.case.handbook_version_id == gas_draft
        assert run.case.level == "yellow" and run.value == 25.0  # the yellow threshold
        assert run.clock_at == clock()
        assert [t.element_id for t in test_runs.open_tasks(run)] == ["Activity_assessment"]
        assert [r.id for r in test_runs.runs_of(gas_draft)] == [run_id]
        assert db.session.scalar(select(AuditRecord).where(
            AuditRecord.action == "handbook.test_run")).after["case_no"] == run.case.case_no


def test_the_sample_alert_is_checked_field_by_field(app, gas_draft, designer, clock):
    for kw, field in (({"item": "NOPE"}, "item_code"), ({"level": "purple"}, "level"),
                      ({"town": "district"}, "town")):
        with pytest.raises(ValidationFailed) as failed:
            _start(app, clock, designer, gas_draft, **kw)
        assert list(failed.value.details) == [field]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Case).where(
            Case.is_test.is_(True))) == 0


def test_only_a_draft_of_a_handbook_one_designs_can_be_run(app, gas_draft, designer, clock,
                                                           make_user):
    with app.app_context():
        published = db.session.scalar(select(HandbookVersion.id).where(
            HandbookVersion.handbook_key == "gas",
            HandbookVersion.status == VersionStatus.PUBLISHED))
    with pytest.raises(Conflict):
        _start(app, clock, designer, published)
    other = make_user((Role.BUSINESS_ADMIN, "scenario.elevator"))
    with pytest.raises(Forbidden):
        _start(app, clock, other, gas_draft)


def test_a_draft_that_does_not_compile_is_refused_with_its_problem(app, published, designer,
                                                                  clock):
    with app.app_context():
        files = dict(db.session.scalar(select(HandbookVersion).where(
            HandbookVersion.handbook_key == "gas")).files)
        files["bpmn/scenario_gas.bpmn"] = files["bpmn/scenario_gas.bpmn"].replace(
            "</bpmn:definitions>", "")
        broken = draft_of("gas", clock(), files)
        db.session.commit()
    with pytest.raises(Conflict) as refused:
        _start(app, clock, designer, broken)
    assert refused.value.code == "does_not_compile"


def test_tasks_are_completed_with_the_real_form_rules(app, gas_draft, designer, clock):
    run_id = _start(app, clock, designer, gas_draft)
    with app.app_context():
        run = db.session.get(HandbookTestRun, run_id)
        task = test_runs.open_tasks(run)[0]
        with pytest.raises(ValidationFailed) as failed:
            test_runs.complete_task(db.session.get(User, designer["id"]), run_id, task.id,
                                    {"verdict": "not-a-choice"})
        assert "verdict" in failed.value.details
        db.session.rollback()
    assert _complete_ready(app, designer, run_id) == "Activity_assessment"
    with app.app_context():
        run = db.session.get(HandbookTestRun, run_id)
        assert [t.element_id for t in test_runs.open_tasks(run)] == ["Activity_accept"]


def test_the_virtual_clock_fires_reminders_that_reach_nobody(app, gas_draft, designer, clock):
    run_id = _start(app, clock, designer, gas_draft)
    _complete_ready(app, designer, run_id)  # assessment: the accept step waits, 30 min
    with app.app_context():
        actor = db.session.get(User, designer["id"])
        run, fired = test_runs.advance_clock(actor, run_id, minutes=45)
        db.session.commit()
        assert fired >= 1
        assert run.clock_at == clock() + timedelta(minutes=45)
        notices = test_runs.simulated_notices(run)
        assert "reminder" in [n.kind for n in notices]
        completed = db.session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == run.case_id, CaseEvent.kind == "task",
            CaseEvent.new_state == "COMPLETED")).all()
        # Each reminder ran at its own time on the virtual clock: the accept limit, then
        # every 10 minutes.
        reminders = [e.at - clock() for e in completed
                     if e.element_id == "Activity_remind_responder"]
        assert reminders == [timedelta(minutes=30, seconds=1), timedelta(minutes=40, seconds=1)]
        # (the heads were told a review waits; the test case itself told nobody)
        assert db.session.scalars(select(Notification.kind).where(
            Notification.case_id == run.case_id)).all() == []
        # The real scheduler leaves the test case to its clock, however late it is.
        assert run.case_id not in timers.due_case_ids(clock() + timedelta(days=30))
        with pytest.raises(ValidationFailed):
            test_runs.advance_clock(actor, run_id, minutes=0)


def test_test_cases_stay_out_of_inboxes_lists_and_figures(app, gas_draft, designer, clock,
                                                         make_user, client):
    run_id = _start(app, clock, designer, gas_draft)
    admin = make_user((Role.BUSINESS_ADMIN, "district"), username="district.admin")
    office = make_user((Role.DISTRICT_OFFICE, "district"))
    tech = make_user((Role.TECH_ADMIN, "district"))
    later = clock() + timedelta(days=5)
    with app.app_context():
        run = db.session.get(HandbookTestRun, run_id)
        case_no = run.case.case_no
        user = db.session.get(User, admin["id"])
        assert inbox.inbox(user, now=later).total == 0
        assert inbox.counts(user, now=later)["total"] == 0
        assert overdue.overdue_cases(db.session.get(User, office["id"]), later).total == 0
        run.case.stuck_since = clock()  # a stuck test case is not a stuck case
        db.session.flush()
        assert stuck.count_stuck() == 0
        assert stuck.stuck_cases(db.session.get(User, tech["id"])) == []
        db.session.rollback()
    api = Api(client)
    assert api.login("district.admin").status_code == 200
    assert api.get("/cases").get_json()["total"] == 0
    assert api.get("/tasks/mine").status_code == 200
    assert case_no not in api.get("/tasks/mine").get_data(as_text=True)
    assert api.get(f"/cases/{case_no}").status_code == 404


def test_a_closed_test_case_is_not_checked_for_data_quality(app, gas_draft, designer, clock):
    run_id = _start(app, clock, designer, gas_draft)
    answers = {"Activity_assessment": {"verdict": "false_alarm", "major_risk": False}}
    _complete_ready(app, designer, run_id, answers)
    with app.app_context():
        run = db.session.get(HandbookTestRun, run_id)
        assert run.case.status == "false_alarm"
        assert quality.scan(clock() + timedelta(hours=1)).checked == 0


def test_deleting_a_run_removes_its_case_and_history_and_is_audited(app, gas_draft, designer,
                                                                    clock):
    run_id = _start(app, clock, designer, gas_draft)
    _complete_ready(app, designer, run_id)
    with app.app_context():
        run = db.session.get(HandbookTestRun, run_id)
        case_id, case_no = run.case_id, run.case.case_no
        assert test_runs.delete_run(db.session.get(User, designer["id"]), run_id,
                                    now=clock()) == case_no
        db.session.commit()
        assert db.session.get(Case, case_id) is None
        for model in (CaseEvent, CaseTask):
            assert db.session.scalar(select(func.count()).select_from(model).where(
                model.case_id == case_id)) == 0
        record = db.session.scalar(select(AuditRecord).where(
            AuditRecord.action == "handbook.test_run_delete"))
        assert record.before["case_no"] == case_no and record.before["events"] > 3


def test_the_database_keeps_a_real_case_history_and_its_test_flag(app, gas_case, clock):
    """Only a test case's history can be deleted, and no case becomes a test case later."""
    import sqlalchemy as sa

    with app.app_context():
        case_id = db.session.scalar(select(Case.id).where(Case.case_no == gas_case))
        with pytest.raises(sa.exc.DBAPIError):
            with db.session.begin_nested():
                db.session.execute(sa.delete(CaseEvent).where(CaseEvent.case_id == case_id))
        with pytest.raises(sa.exc.DBAPIError):
            with db.session.begin_nested():
                db.session.execute(sa.update(Case).where(Case.id == case_id)
                                   .values(is_test=True))


def test_a_stuck_test_case_is_shown_and_retried_on_its_run(app, published, designer, clock,
                                                          as_role):
    with app.app_context():
        files = dict(db.session.scalar(select(HandbookVersion).where(
            HandbookVersion.handbook_key == "gas")).files)
        name = "bpmn/shared/common_accept.bpmn"
        files[name] = files[name].replace("<bpmn:script>reminded_at = now().isoformat()",
                                          "<bpmn:script>reminded_at = now().isoformat() + gone")
        version_id = draft_of("gas", clock(), files)
        db.session.commit()
    run_id = _start(app, clock, designer, version_id)
    _complete_ready(app, designer, run_id)
    with app.app_context():
        run, _fired = test_runs.advance_clock(db.session.get(User, designer["id"]), run_id,
                                              minutes=45)
        db.session.commit()
        assert run.case.stuck_since is not None
        assert stuck.count_stuck() == 0  # not on the technical administrators' list
    browser = as_role((Role.BUSINESS_ADMIN, "scenario.gas"))
    page = browser.text(f"/designer/test-runs/{run_id}")
    assert "stuck-banner" in page and 'data-action="retry"' in page
    assert browser.post(f"/designer/test-runs/{run_id}/retry").status_code == 302
    with app.app_context():
        run = db.session.get(HandbookTestRun, run_id)
        kinds = [e.kind for e in db.session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == run.case_id).order_by(CaseEvent.seq))]
        # The retry went through the stuck service: the case history says so.
        assert kinds[-1] == "unstuck" and run.case.stuck_since is None


def test_a_save_with_other_files_leaves_running_test_cases_pinned(app, gas_draft, designer,
                                                                  clock, as_role):
    from app.services import handbook_drafts

    run_id = _start(app, clock, designer, gas_draft)
    _complete_ready(app, designer, run_id)  # assessment done: the accept step waits
    with app.app_context():
        actor = db.session.get(User, designer["id"])
        draft = db.session.get(HandbookVersion, gas_draft)
        files, started_on = dict(draft.files), draft.content_hash
        # A save that keeps the files (a change note only) leaves the run as it is.
        saved = handbook_drafts.save_draft(
            actor, "gas", draft_id=gas_draft, revision=draft.revision,
            source_version_id=gas_draft, files={"bpmn/scenario_gas.bpmn":
                                                files["bpmn/scenario_gas.bpmn"]},
            note="same files", now=clock())
        db.session.commit()
        assert saved.outdated_runs == 0
        assert not db.session.get(HandbookTestRun, run_id).outdated
        # A save that changes the files under the running test case ends it there.
        changed = files["bpmn/scenario_gas.bpmn"].replace(
            'targetRef="Activity_call_expert" name="是"',
            'targetRef="Activity_call_expert" name="是（重大风险）"')
        assert changed != files["bpmn/scenario_gas.bpmn"]
        saved = handbook_drafts.save_draft(
            actor, "gas", draft_id=gas_draft, revision=saved.version.revision,
            source_version_id=gas_draft, files={"bpmn/scenario_gas.bpmn": changed},
            note="renamed a flow", now=clock())
        db.session.commit()
        assert saved.outdated_runs == 1
        run = db.session.get(HandbookTestRun, run_id)
        assert run.content_hash == started_on != run.version.content_hash and run.outdated
        task = test_runs.open_tasks(run)[0]
        with pytest.raises(Conflict) as refused:
            test_runs.complete_task(actor, run_id, task.id, {})
        assert refused.value.code == "run_outdated"
        db.session.rollback()
        with pytest.raises(Conflict) as refused:
            test_runs.advance_clock(actor, run_id, minutes=45)
        assert refused.value.code == "run_outdated"
        db.session.rollback()
        events = db.session.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.case_id == run.case_id))
    # The run page says so and offers nothing to move it; the refusal over HTTP is clear.
    browser = as_role((Role.BUSINESS_ADMIN, "scenario.gas"))
    page = browser.text(f"/designer/test-runs/{run_id}")
    assert "data-run-outdated" in page and 'data-action="complete"' not in page
    assert 'data-action="clock"' not in page
    assert "data-outdated" in browser.text(f"/designer/versions/{gas_draft}/test-runs")
    with app.app_context():
        task_id = test_runs.open_tasks(db.session.get(HandbookTestRun, run_id))[0].id
    refused_http = browser.post(f"/designer/test-runs/{run_id}/tasks/{task_id}",
                                data={"verdict": "confirm"})
    assert refused_http.status_code == 409
    assert browser.post(f"/designer/test-runs/{run_id}/clock",
                        data={"minutes": "45"}).status_code == 409
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(
            CaseEvent.case_id == db.session.get(HandbookTestRun, run_id).case_id)) == events
    # A new run starts on the saved files and moves; the old one can still be deleted.
    new_run = _start(app, clock, designer, gas_draft)
    assert _complete_ready(app, designer, new_run) == "Activity_assessment"
    with app.app_context():
        test_runs.delete_run(db.session.get(User, designer["id"]), run_id, now=clock())
        db.session.commit()
        assert db.session.get(HandbookTestRun, run_id) is None
