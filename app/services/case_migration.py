"""Moving running cases to the published version of their handbook (Art 7: running cases keep
their version unless someone moves them, after a dry run).

A dry run says per case whether it can move, and if not why (a step it waits in, has used
or may still reach is gone); where each waiting task goes; and what happens to its deadlines
(kept: task due times and the case's deadline stay, timers keep the time they were armed at).
Each case moves in its own savepoint: a refusal or a failure leaves it on its old version
untouched. A batch moves chosen cases one per request, so people watch it progress and can
stop it; every move is a case event and an audit record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.i18n import _l
from app.models import (
    Case,
    CaseMigrationBatch,
    CaseTask,
    HandbookVersion,
    User,
    VersionStatus,
)
from app.services import audit, case_engine
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.handbooks import get_version, published_version
from app.services.permissions import require
from app.services.steps import version_index
from workflows import ElementChange, MigrationRefusedError, WorkflowsError, check_migration
from workflows.migration import diff_versions

MAX_BATCH = 500

# The engine's refusals (workflows.migration), said again in the reader's language.
_REMOVED = re.compile(r"^(?:process|called process) '(?P<process>[^']+)': element "
                      r"'(?P<element>[^']+)' was removed but the instance (?P<status>.+)$")
_NOT_CALLED = re.compile(r"^called process '(?P<process>[^']+)' is running but the target "
                         r"version does not call it$")


def _reason(text: str, names: dict[str, str]) -> str:
    found = _REMOVED.match(text)
    if found is not None:
        step = names.get(found["element"], found["element"])
        status = found["status"]
        if status.startswith("is at it"):
            return str(_l("The new version no longer has the step %(step)s, where the case "
                          "is now.", step=step))
        if status.startswith("has already used"):
            return str(_l("The new version no longer has the step %(step)s, which the case "
                          "has already been through.", step=step))
        return str(_l("The new version no longer has the step %(step)s, which the case may "
                      "still reach.", step=step))
    found = _NOT_CALLED.match(text)
    if found is not None:
        return str(_l("The case is inside %(process)s, which the new version no longer calls.",
                      process=names.get(found["process"], found["process"])))
    return text


@dataclass(frozen=True)
class TaskMove:
    """Where a waiting task goes: the same step in the target (kept with its due time)."""

    element_id: str
    name: str
    process_id: str
    due_at: datetime | None
    target_element: str | None  # None: the step is not in the target version
    target_name: str | None


@dataclass(frozen=True)
class TimerMove:
    element_id: str | None
    due_at: datetime | None
    keeps: bool  # the timer is in the target and keeps its due time
    changed: bool  # its definition changed in the target (the running timer is not re-armed)


@dataclass
class DryRun:
    case_id: int
    case_no: str
    from_number: int
    to_number: int
    can_move: bool
    reasons: list[str] = field(default_factory=list)
    tasks: list[TaskMove] = field(default_factory=list)
    timers: list[TimerMove] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)
    due_at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    case_id: int
    case_no: str
    outcome: str  # migrated / blocked / failed
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"case_no": self.case_no, "outcome": self.outcome, "reasons": self.reasons}


def _handbook_target(actor: User, version_id: int) -> HandbookVersion:
    version = get_version(version_id)
    require(actor, "handbook.design", version.node)
    if version.status != VersionStatus.PUBLISHED:
        raise Conflict(_l("Cases can only move to the published version."),
                       code="target_not_published")
    return version


def cases_on_older_versions(actor: User, key: str) -> list[Case]:
    """Running cases of handbook `key` on a version older than the published one."""
    target = published_version(key)
    if target is None:
        raise NotFound(_l("This handbook has no published version."))
    require(actor, "handbook.design", target.node)
    older = select(HandbookVersion.id).where(HandbookVersion.handbook_key == key,
                                             HandbookVersion.id != target.id)
    return list(db.session.scalars(select(Case).where(
        Case.handbook_version_id.in_(older), Case.status == "open", Case.is_test.is_(False))
        .order_by(Case.opened_at, Case.id)))


def _case_of(key: str, case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    if case is None or case.is_test:
        raise NotFound(_l("No such case."))
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    if version is None or version.handbook_key != key:
        raise NotFound(_l("No such case."))
    return case


def _plan(case: Case, target: HandbookVersion) -> DryRun:
    source = db.session.get(HandbookVersion, case.handbook_version_id)
    assert source is not None
    plan = DryRun(case.id, case.case_no, source.number, target.number, False, due_at=case.due_at)
    if source.id == target.id:
        plan.reasons.append(str(_l("The case is already on this version.")))
        return plan
    if case.status != "open":
        plan.reasons.append(str(_l("The case is finished.")))
        return plan
    if case.stuck_since is not None:
        plan.reasons.append(str(_l("The case is stuck; retry it first.")))
        return plan
    try:
        loaded = case_engine.load(case)
        new = case_engine.compiled(target)
        check = check_migration(loaded.instance, new)
    except WorkflowsError as exc:
        plan.reasons.append(str(exc))
        return plan
    plan.can_move = check.can_migrate
    index = version_index(source)
    names = {element: facts.name or element
             for (_process, element), facts in index.elements.items()}
    plan.reasons.extend(_reason(text, names) for text in check.reasons)
    diff = diff_versions(loaded.compiled, new, case.process_id)
    plan.changed = list(diff.changed)
    changed_ids = {c.element_id for c in diff.changed}
    target_index = version_index(target)
    for row in db.session.scalars(select(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.status == "ready").order_by(CaseTask.id)):
        facts = target_index.get(row.process_id, row.element_id)
        plan.tasks.append(TaskMove(row.element_id, row.name, row.process_id, row.due_at,
                                   row.element_id if facts else None,
                                   (facts.name or row.element_id) if facts else None))
    removed = {c.element_id for c in diff.removed}
    for waiting in loaded.instance.waiting_events():
        if waiting.kind != "timer":
            continue
        plan.timers.append(TimerMove(waiting.element_id, waiting.due,
                                     waiting.element_id not in removed,
                                     waiting.element_id in changed_ids))
    return plan


def dry_run(actor: User, case_id: int, target_version_id: int) -> DryRun:
    """Could the case move to the target version, and what would happen? Changes nothing."""
    target = _handbook_target(actor, target_version_id)
    return _plan(_case_of(target.handbook_key, case_id), target)


def _keep_task_rows(case: Case, before: dict[tuple[str, str], CaseTask],
                    loaded: case_engine.Loaded) -> None:
    """A waiting task the engine re-predicted keeps its inbox row: due time, claim, creation."""
    for task in loaded.instance.ready_human_tasks():
        row = before.pop((task.process_id, task.element_id), None)
        if row is not None and row.task_id != task.task_id:
            row.task_id = task.task_id


def _move(actor: User, case: Case, target: HandbookVersion, now: datetime) -> None:
    from workflows import migrate

    source = db.session.get(HandbookVersion, case.handbook_version_id)
    assert source is not None
    loaded = case_engine.load(case)
    rows = db.session.scalars(select(CaseTask).where(CaseTask.case_id == case.id,
                                                     CaseTask.status == "ready")).all()
    before = {(r.process_id, r.element_id): r for r in rows}
    due_at = case.due_at
    new = case_engine.compiled(target)
    report, result = migrate(loaded.instance, new, at=now, actor=actor.username)
    if result.failure is not None:
        raise MigrationRefusedError([result.failure.message])
    moved = case_engine.Loaded(case, target, new,
                               version_index(target),
                               loaded.instance)
    _keep_task_rows(case, before, moved)
    case.handbook_version_id = target.id
    case_engine.add_event(case, kind="migrated", at=now, actor=actor,
                          version_hash=target.content_hash,
                          data={"from": source.content_hash, "to": target.content_hash,
                                "from_number": source.number, "to_number": target.number,
                                "reset": report.reset_tasks, "kept": report.kept_waiting})
    case_engine.record_step(moved, result, now=now, actor=actor)
    case.due_at = due_at
    db.session.flush()
    audit.record(actor=actor, action="case.migrate", object_type="case",
                 object_id=case.case_no, at=now,
                 before={"handbook": source.handbook_key, "number": source.number},
                 after={"handbook": target.handbook_key, "number": target.number})


def migrate_case(actor: User, case_id: int, target_version_id: int, *,
                 now: datetime) -> Outcome:
    """Move one case if its dry run allows, inside its own savepoint."""
    target = _handbook_target(actor, target_version_id)
    case = _case_of(target.handbook_key, case_id)
    db.session.scalar(select(Case).where(Case.id == case.id).with_for_update(of=Case))
    plan = _plan(case, target)
    if not plan.can_move:
        return Outcome(case.id, case.case_no, "blocked", plan.reasons)
    savepoint = db.session.begin_nested()
    try:
        _move(actor, case, target, now)
        savepoint.commit()
    except Exception as exc:  # any failure: this case stays where it was, the batch goes on
        savepoint.rollback()
        db.session.expire_all()
        reason = exc.reasons[0] if isinstance(exc, MigrationRefusedError) and exc.reasons \
            else f"{exc.__class__.__name__}: {exc}"
        return Outcome(case_id, plan.case_no, "failed", [reason])
    return Outcome(case.id, case.case_no, "migrated", [])


def start_batch(actor: User, key: str, target_version_id: int, case_ids: list[int], *,
                now: datetime) -> CaseMigrationBatch:
    target = _handbook_target(actor, target_version_id)
    if target.handbook_key != key:
        raise NotFound(_l("No such handbook version."))
    chosen = list(dict.fromkeys(case_ids))
    if not chosen:
        raise ValidationFailed(_l("Choose at least one case."),
                               details={"case": [str(_l("Choose at least one case."))]})
    if len(chosen) > MAX_BATCH:
        raise ValidationFailed(_l("At most %(n)d cases at a time.", n=MAX_BATCH),
                               details={"case": [str(_l("At most %(n)d cases at a time.",
                                                        n=MAX_BATCH))]})
    for case_id in chosen:
        _case_of(key, case_id)
    batch = CaseMigrationBatch(handbook_key=key, target_version_id=target.id, case_ids=chosen,
                               results={}, status="running", created_by_id=actor.id,
                               created_at=now)
    db.session.add(batch)
    db.session.flush()
    audit.record(actor=actor, action="case.migrate_batch", object_type="handbook_version",
                 object_id=target.id, at=now, after={"batch": batch.id, "cases": len(chosen)})
    return batch


def get_batch(actor: User, batch_id: int) -> CaseMigrationBatch:
    batch = db.session.get(CaseMigrationBatch, batch_id)
    if batch is None:
        raise NotFound(_l("No such migration."))
    require(actor, "handbook.design", batch.target_version.node)
    return batch


def step_batch(actor: User, batch_id: int, *, now: datetime) -> CaseMigrationBatch:
    """Move the batch's next case (one per call); finish when none is left."""
    batch = get_batch(actor, batch_id)
    # One step at a time per batch (two tabs, a double click): the row lock serialises them.
    db.session.scalar(select(CaseMigrationBatch).where(CaseMigrationBatch.id == batch.id)
                      .with_for_update(of=CaseMigrationBatch))
    db.session.refresh(batch)
    if batch.status != "running":
        return batch
    case_id = batch.next_case_id
    if case_id is not None:
        try:
            outcome = migrate_case(actor, case_id, batch.target_version_id, now=now)
        except (NotFound, Conflict) as exc:
            outcome = Outcome(case_id, str(case_id), "blocked", [str(exc.message)])
        batch.results = {**batch.results, str(case_id): outcome.to_dict()}
    if batch.next_case_id is None:
        batch.status, batch.finished_at = "finished", now
    db.session.flush()
    return batch


def stop_batch(actor: User, batch_id: int, *, now: datetime) -> CaseMigrationBatch:
    batch = get_batch(actor, batch_id)
    if batch.status == "running":
        batch.status, batch.finished_at = "stopped", now
        db.session.flush()
        audit.record(actor=actor, action="case.migrate_stop", object_type="handbook_version",
                     object_id=batch.target_version_id, at=now,
                     after={"batch": batch.id, "done": batch.done, "total": batch.total})
    return batch
