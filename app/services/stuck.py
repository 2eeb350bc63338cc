"""Stuck cases: a step the engine could not complete never fails silently.

A failed step (a script error, a limit, a stopped evaluation, a state that will not load) marks
the case stuck: the reason is kept on the case, shown on its page in the user's language, listed
for technical administrators with an audited retry, and counted on the status page. Failures
that may pass by themselves (an evaluation stopped by its time budget on a loaded machine) are
retried by the scheduler a few times with growing pauses before they wait for a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.i18n import _l
from app.models import Case, User
from app.services import audit, case_engine, notify
from app.services.errors import Conflict, NotFound
from app.services.permissions import require
from workflows import WorkflowsError

MAX_AUTOMATIC_RETRIES = 3
FIRST_PAUSE = timedelta(minutes=1)

KIND_LABELS = {
    "script": _l("a script or condition of the handbook failed"),
    "limit": _l("the step went beyond a limit of the engine"),
    "timeout": _l("an evaluation was stopped after its time budget"),
    "engine": _l("the process engine refused the step"),
    "state": _l("the saved process state could not be loaded"),
}


def is_transient(failure: dict[str, Any] | None) -> bool:
    """Whether retrying the same step may succeed without any change (a time-budget stop)."""
    return failure is not None and failure.get("kind") == "timeout"


def summary(failure: dict[str, Any] | None) -> str:
    """The reason a case is stuck, in the user's language (technical detail kept apart)."""
    if not failure:
        return str(_l("The process engine could not complete a step."))
    step = failure.get("name") or failure.get("element_id") or "-"
    reason = KIND_LABELS.get(str(failure.get("kind")), KIND_LABELS["engine"])
    return str(_l("The step “%(step)s” could not run: %(reason)s. The case waits until a "
                  "technical administrator retries it.", step=step, reason=reason))


def mark_state_failure(case: Case, exc: Exception, *, now: datetime) -> None:
    """The case's state could not be loaded or moved: keep the reason, mark it stuck."""
    failure = {"kind": "state", "message": f"{exc.__class__.__name__}: {exc}",
               "element_id": None, "name": None, "task_id": None, "process_id": case.process_id,
               "line": None, "at": now.isoformat()}
    case.error = failure["message"]
    case.failure = failure
    if case.stuck_since is None:
        case.stuck_since = now
    case_engine.add_event(case, kind="error", at=now, version_hash="", data=failure)


def load_or_mark(case: Case, *, now: datetime) -> case_engine.Loaded | None:
    """The case's running process, or None with the case marked stuck when its saved state
    cannot be loaded (whatever brought the caller here, an alert or a timer, is kept)."""
    try:
        return case_engine.load(case)
    except WorkflowsError as exc:
        mark_state_failure(case, exc, now=now)
        return None


@dataclass(frozen=True)
class StuckCase:
    id: int
    case_no: str
    scenario: str
    town: str
    level: str
    since: datetime | None
    attempts: int
    summary: str
    detail: str
    transient: bool


def stuck_cases(actor: User) -> list[StuckCase]:
    require(actor, "case.retry")
    rows = db.session.scalars(select(Case).where(Case.stuck_since.is_not(None),
                                                 Case.is_test.is_(False))
                              .order_by(Case.stuck_since)).all()
    return [StuckCase(c.id, c.case_no, c.scenario, c.node.name, c.level, c.stuck_since,
                      c.stuck_attempts, summary(c.failure), c.error or "",
                      is_transient(c.failure)) for c in rows]


def count_stuck() -> int:
    return int(db.session.scalar(select(func.count(Case.id)).where(
        Case.stuck_since.is_not(None), Case.is_test.is_(False))) or 0)


def _retry(case: Case, *, actor: User | None, now: datetime) -> bool:
    """Run every failed task of the case again; True when the case is no longer stuck."""
    case.stuck_attempts += 1
    loaded = load_or_mark(case, now=now)
    if loaded is None:
        return False
    for failure in loaded.instance.errors():
        result = loaded.instance.retry_task(failure.task_id,
                                            actor=actor.username if actor else "system", at=now)
        completed = case_engine.record_step(loaded, result, now=now, actor=actor)
        notify.after_step(case, completed, now=now)
        if result.failure is not None:
            break
    if not loaded.instance.has_errors:
        case_engine.clear_stuck(case, now=now)
    db.session.flush()
    return case.stuck_since is None


def retry(actor: User, case_id: int, *, now: datetime) -> bool:
    """A technical administrator retries a stuck case (audited)."""
    require(actor, "case.retry")
    case = db.session.scalar(select(Case).where(Case.id == case_id).with_for_update(of=Case))
    if case is None:
        raise NotFound(_l("No such case."))
    if case.stuck_since is None:
        raise Conflict(_l("This case is not stuck (any more)."), code="not_stuck")
    before = {"error": case.error, "attempts": case.stuck_attempts}
    fixed = _retry(case, actor=actor, now=now)
    audit.record(actor=actor, action="case.retry", object_type="case", object_id=case.id,
                 result="ok" if fixed else "failed", before=before,
                 after={"error": case.error, "attempts": case.stuck_attempts}, at=now)
    return fixed


def retry_transient(now: datetime, *, limit: int = 50) -> int:
    """The scheduler retries failures that may pass by themselves, with growing pauses."""
    fixed = 0
    rows = db.session.scalars(select(Case).where(
        Case.stuck_since.is_not(None), Case.is_test.is_(False),
        Case.stuck_attempts < MAX_AUTOMATIC_RETRIES)
        .order_by(Case.stuck_since).limit(limit)).all()
    for case in rows:
        failure = case.failure
        if failure is None or not is_transient(failure):
            continue
        failed_at = datetime.fromisoformat(failure["at"])  # set with every failure
        if failed_at + FIRST_PAUSE * (2 ** case.stuck_attempts) > now:
            continue
        if _retry(case, actor=None, now=now):
            fixed += 1
    return fixed
