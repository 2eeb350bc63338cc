"""Moving running cases to a newer published version: dry run per case (blocked and why,
where each waiting task goes, what happens to its deadlines), migration one case per
savepoint with deadlines kept, audited, a failure leaving the case untouched; batches that
can be stopped; the CLI twin."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    AuditRecord,
    Case,
    CaseEvent,
    CaseTask,
    Role,
    User,
)
from app.services import case_engine, case_migration, handbooks
from app.services.errors import Forbidden, ValidationFailed
from app.services.verification import verify_case
from cases_fixtures import ANSWERS, REMOVED, RENAMED, publish_edit


@pytest.fixture
def people(make_user) -> dict[str, int]:
    return {
        "business_admin": make_user((Role.BUSINESS_ADMIN, "scenario.gas"),
                                    username="gas.admin")["id"],
        "responder": make_user((Role.RESPONDER, "town.02"))["id"],
        "department_head": make_user((Role.DEPARTMENT_HEAD, "industry.construction"),
                                     username="jjw.head")["id"],
    }


def _case(app, case_no: str) -> Case:
    return db.session.scalar(select(Case).where(Case.case_no == case_no))


def _open_case(point, send, code: str) -> str:
    point(code, "gas")
    return str(send("gas", "ch4_lel", 30.0, code)["case_no"])


def _admin(people) -> User:
    return db.session.get(User, people["business_admin"])


def test_a_case_waiting_in_a_removed_step_is_blocked_not_broken(app, published, point, send,
                                                                people, drive, clock):
    case_no = _open_case(point, send, "GAS-MH-0001")
    drive(case_no, people, stop_at="Activity_dispose", answers=ANSWERS)
    target = publish_edit(app, clock, *REMOVED)
    with app.app_context():
        case = _case(app, case_no)
        old_version, state = case.handbook_version_id, dict(case.state)
        plan = case_migration.dry_run(_admin(people), case.id, target)
        assert not plan.can_move
        assert any("到场处置" in r for r in plan.reasons), plan.reasons
        outcome = case_migration.migrate_case(_admin(people), case.id, target, now=clock())
        db.session.commit()
        assert outcome.outcome == "blocked"
        case = _case(app, case_no)
        assert case.handbook_version_id == old_version and case.state == state
        assert case.stuck_since is None and case.status == "open"
        assert verify_case(case).ok


def test_dry_run_says_where_tasks_go_and_what_happens_to_deadlines(app, published, point, send,
                                                                   people, drive, clock):
    case_no = _open_case(point, send, "GAS-MH-0002")
    drive(case_no, people, stop_at="Activity_accept", answers=ANSWERS)
    target = publish_edit(app, clock, *RENAMED)
    with app.app_context():
        case = _case(app, case_no)
        plan = case_migration.dry_run(_admin(people), case.id, target)
        assert plan.can_move, plan.reasons
        [task] = plan.tasks
        assert (task.element_id, task.target_element) == ("Activity_accept", "Activity_accept")
        assert task.due_at is not None
        assert plan.timers and all(t.keeps for t in plan.timers)
        assert "Activity_dispose" in [c.element_id for c in plan.changed]


def test_migration_keeps_deadlines_and_is_recorded(app, published, point, send, people, drive,
                                                   clock):
    case_no = _open_case(point, send, "GAS-MH-0003")
    drive(case_no, people, stop_at="Activity_accept", answers=ANSWERS)
    with app.app_context():
        case = _case(app, case_no)
        before_due = case.due_at
        before_timer = case.next_timer_at
        row = db.session.scalar(select(CaseTask).where(CaseTask.case_id == case.id,
                                                       CaseTask.status == "ready"))
        task_due, task_row = row.due_at, row.id
    clock.advance(minutes=10)
    target = publish_edit(app, clock, *RENAMED)
    with app.app_context():
        outcome = case_migration.migrate_case(_admin(people), _case(app, case_no).id, target,
                                              now=clock())
        db.session.commit()
        assert outcome.outcome == "migrated", outcome.reasons
        case = _case(app, case_no)
        assert case.handbook_version_id == target
        assert case.due_at == before_due and case.next_timer_at == before_timer
        ready = db.session.scalars(select(CaseTask).where(CaseTask.case_id == case.id,
                                                          CaseTask.status == "ready")).all()
        assert [(r.id, r.due_at) for r in ready] == [(task_row, task_due)]
        event = db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                          CaseEvent.kind == "migrated"))
        assert event.data["to_number"] == 2
        assert db.session.scalar(select(AuditRecord).where(
            AuditRecord.action == "case.migrate")).object_id == case_no
        assert verify_case(case).ok, verify_case(case).problem
    # The case goes on on the new version: the timers still fire at their first deadline.
    clock.now = before_timer + timedelta(seconds=1)
    from app.services import timers

    with app.app_context():
        assert timers.fire_case(_case(app, case_no).id, clock())
        db.session.commit()
    assert drive(case_no, people, stop_at="Activity_dispose", answers=ANSWERS) == [
        "Activity_accept"]


def test_a_failing_step_leaves_the_case_on_its_old_version(app, published, point, send, people,
                                                           drive, clock, monkeypatch):
    case_no = _open_case(point, send, "GAS-MH-0004")
    drive(case_no, people, stop_at="Activity_accept", answers=ANSWERS)
    target = publish_edit(app, clock, *RENAMED)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    with app.app_context():
        case = _case(app, case_no)
        version, seq = case.handbook_version_id, case.event_seq
        monkeypatch.setattr(case_engine, "record_step", broken)
        outcome = case_migration.migrate_case(_admin(people), case.id, target, now=clock())
        db.session.commit()
        assert outcome.outcome == "failed" and "disk full" in outcome.reasons[0]
        case = _case(app, case_no)
        assert (case.handbook_version_id, case.event_seq) == (version, seq)


def test_a_batch_moves_chosen_cases_one_by_one_and_can_stop(app, published, point, send,
                                                            people, drive, clock):
    numbers = [_open_case(point, send, f"GAS-MH-01{i:02d}") for i in range(3)]
    target = publish_edit(app, clock, *RENAMED)
    with app.app_context():
        admin = _admin(people)
        listed = case_migration.cases_on_older_versions(admin, "gas")
        assert sorted(c.case_no for c in listed) == sorted(numbers)
        ids = [c.id for c in listed]
        batch = case_migration.start_batch(admin, "gas", target, ids, now=clock())
        db.session.commit()
        batch = case_migration.step_batch(admin, batch.id, now=clock())
        db.session.commit()
        assert batch.done == 1 and batch.status == "running"
        batch = case_migration.stop_batch(admin, batch.id, now=clock())
        db.session.commit()
        batch = case_migration.step_batch(admin, batch.id, now=clock())
        assert batch.done == 1 and batch.status == "stopped"
        moved = [c for c in ids if _version_of(c) == target]
        assert len(moved) == 1
        with pytest.raises(ValidationFailed):
            case_migration.start_batch(admin, "gas", target, [], now=clock())


def _version_of(case_id: int) -> int:
    return db.session.get(Case, case_id).handbook_version_id


def test_only_designers_of_the_handbook_migrate(app, published, point, send, people, clock,
                                                make_user):
    case_no = _open_case(point, send, "GAS-MH-0005")
    target = publish_edit(app, clock, *RENAMED)
    other = make_user((Role.BUSINESS_ADMIN, "scenario.elevator"))
    with app.app_context():
        stranger = db.session.get(User, other["id"])
        with pytest.raises(Forbidden):
            case_migration.migrate_case(stranger, _case(app, case_no).id, target, now=clock())
        with pytest.raises(Forbidden):
            case_migration.cases_on_older_versions(stranger, "gas")


def test_cli_migrates_with_a_dry_run_first(app, published, point, send, people, clock):
    case_no = _open_case(point, send, "GAS-MH-0006")
    publish_edit(app, clock, *RENAMED)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["handbooks", "migrate", "gas", "--as", "gas.admin",
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    assert case_no in result.output and "can move" in result.output
    with app.app_context():
        assert _case(app, case_no).handbook_version_id != handbooks.published_version("gas").id
    result = runner.invoke(args=["handbooks", "migrate", "gas", "--as", "gas.admin"])
    assert result.exit_code == 0, result.output
    assert f"{case_no}: migrated" in result.output
