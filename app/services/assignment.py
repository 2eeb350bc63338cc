"""Assignment: a department head or business administrator hands a task to a named person
(reassign or delegate, with a reason), and anyone who sees a case may follow it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from app.extensions import db
from app.i18n import _l
from app.models import Case, CaseFollower, CaseTask, HandbookVersion, User
from app.services import audit, case_engine, notify
from app.services.cases import get_case
from app.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.services.permissions import can, may_take, require

MAX_REASON = 500


def _task(task_id: int) -> CaseTask:
    row = db.session.scalar(select(CaseTask).where(CaseTask.id == task_id))
    if row is None:
        raise NotFound(_l("No such task."))
    return row


def may_assign(actor: User, task: CaseTask) -> bool:
    return task.status == "ready" and can(actor, "task.assign", task.case)


def candidates(actor: User, task: CaseTask, *, limit: int = 200) -> list[User]:
    """Active people who may take the task (its lane, in the case's scope): whom `actor`
    may hand it to."""
    if not may_assign(actor, task):
        return []
    from app.models import PlatformNode, RoleAssignment

    roles = task.role.split(",")
    query = (select(User).join(RoleAssignment, RoleAssignment.user_id == User.id)
             .join(PlatformNode, RoleAssignment.node_id == PlatformNode.id)
             .where(User.active.is_(True), RoleAssignment.role.in_(roles))
             .distinct().order_by(User.username).limit(limit * 5))
    return [u for u in db.session.scalars(query) if may_take(u, task)][:limit]


def task_for_assigning(actor: User, task_id: int) -> CaseTask:
    """The task, if `actor` may hand it over (404 for a case out of sight, 403 otherwise)."""
    task = _task(task_id)
    get_case(actor, task.case_id)
    require(actor, "task.assign", task.case)
    return task


def delegate(actor: User, task_id: int, to_user_id: int, reason: str, *, now: datetime,
             remote_addr: str | None = None) -> CaseTask:
    """Hand a ready task to `to_user_id`: a named person of its lane, in scope. Recorded on
    the case, in the audit trail, and told to the person (and the work-chat groups)."""
    task = _task(task_id)
    get_case(actor, task.case_id)  # 404/403 for a case the actor cannot see
    require(actor, "task.assign", task.case)
    # Lock the case row as claim does: one writer of the task at a time.
    db.session.scalar(select(Case).where(Case.id == task.case_id).with_for_update(of=Case))
    db.session.refresh(task)
    if task.status != "ready":
        raise Conflict(_l("This task is no longer open; reload the case."), code="task_gone")
    errors: dict[str, list[str]] = {}
    text = (reason or "").strip()
    if not text:
        errors["reason"] = [str(_l("Say why the task is handed over."))]
    elif len(text) > MAX_REASON:
        errors["reason"] = [str(_l("At most %(n)s characters.", n=MAX_REASON))]
    target = db.session.get(User, to_user_id) if to_user_id else None
    if target is None or not target.active:
        errors["to"] = [str(_l("Choose an active person."))]
    elif not may_take(target, task):
        errors["to"] = [str(_l("%(name)s does not hold this task's role in the case's area.",
                               name=target.display_name))]
    elif target.id == task.claimed_by_id:
        errors["to"] = [str(_l("%(name)s already holds this task.",
                               name=target.display_name))]
    if errors:
        raise ValidationFailed(_l("Please correct the marked fields."), details=errors)
    assert target is not None
    before = task.claimed_by_id
    task.claimed_by_id, task.claimed_at = target.id, now
    task.delegated_by_id, task.delegated_at, task.delegation_reason = actor.id, now, text
    version = db.session.get(HandbookVersion, task.case.handbook_version_id)
    case_engine.add_event(task.case, kind="delegate", at=now, actor=actor,
                          version_hash=version.content_hash if version else "",
                          element_id=task.element_id, element_name=task.name,
                          data={"to": target.username, "from": _username(before),
                                "reason": text})
    audit.record(actor=actor, action="task.delegate", object_type="case_task",
                 object_id=task.id, before={"claimed_by": _username(before)},
                 after={"claimed_by": target.username, "case_no": task.case.case_no,
                        "reason": text}, at=now, remote_addr=remote_addr)
    notify.delegated(task.case, target, task.name, actor.display_name, text, now=now)
    db.session.flush()
    return task


def _username(user_id: int | None) -> str | None:
    user = db.session.get(User, user_id) if user_id else None
    return user.username if user else None


def is_following(user: User, case: Case) -> bool:
    return db.session.scalar(select(CaseFollower.id).where(
        CaseFollower.case_id == case.id, CaseFollower.user_id == user.id)) is not None


def follow(user: User, case_no: str, *, on: bool, now: datetime) -> bool:
    """Follow (or stop following) a case `user` may see; returns whether now following."""
    from app.services.cases import get_case_by_no

    case = get_case_by_no(user, case_no)
    if case.is_test:
        raise Forbidden(_l("Test runs of draft handbooks cannot be followed."))
    if on and not is_following(user, case):
        db.session.add(CaseFollower(case_id=case.id, user_id=user.id, created_at=now))
    elif not on:
        db.session.execute(delete(CaseFollower).where(
            CaseFollower.case_id == case.id, CaseFollower.user_id == user.id))
    db.session.flush()
    return on
