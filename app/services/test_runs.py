"""Test runs of a handbook draft in the designer's sandbox.

A test run is a test case (`Case.is_test`) started on a draft version from a sample alert at a
chosen level, with its own virtual clock. The designer plays every lane: tasks are completed
with the real engine and the real form rules; moving the clock fires the case's timers
(reminders, escalations, deadlines) as the scheduler would at those times. Test cases never
reach inboxes, notices (their history records whom a notice would have reached), searches,
lists or figures, and the real scheduler never fires them. Runs are kept per version for the
reviewer, and can be deleted with everything recorded on their case (audited).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from app.extensions import db
from app.i18n import _l
from app.models import (
    Attachment,
    Case,
    CaseComment,
    CaseEvent,
    CaseTask,
    DataQualityIssue,
    HandbookTestRun,
    HandbookVersion,
    NodeKind,
    Notification,
    PlatformNode,
    User,
    VersionStatus,
)
from app.services import audit, case_engine, case_opening, cases, notify, org, problem_text
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.handbook_data import Handbook
from app.services.handbooks import get_version
from app.services.permissions import require
from workflows import DefinitionError

# Versions a test run may start on: what is being written or reviewed.
RUNNABLE = (VersionStatus.DRAFT, VersionStatus.IN_REVIEW)
PLACE_KINDS = (NodeKind.TOWN, NodeKind.LINGANG)
# One move of the clock fires at most this many timer steps (a cycle of reminders is a few).
MAX_TIMER_STEPS = 200
# The furthest one move of the clock may go.
MAX_ADVANCE = timedelta(days=30)


def _field_error(field: str, message: Any) -> ValidationFailed:
    return ValidationFailed(message, details={field: [str(message)]})


def _designed_version(actor: User, version_id: int) -> HandbookVersion:
    version = get_version(version_id)
    require(actor, "handbook.design", version.node)
    return version


def _handbook(version: HandbookVersion) -> Handbook:
    handbook = cases.handbook_or_none(version)
    if handbook is None:
        raise Conflict(_l("Only a scenario handbook can be test-run."), code="not_a_scenario")
    return handbook


@dataclass(frozen=True)
class SampleAlert:
    """What a test run starts from: a warning item, a level, a reading and a town."""

    item_code: str
    level: str
    value: float | None
    town: str


def sample_choices(version: HandbookVersion) -> dict[str, Any]:
    """The warning items (with their levels and thresholds) and towns a run may start from."""
    handbook = _handbook(version)
    return {"items": [{"code": i.code, "name": i.name, "unit": i.unit,
                       "thresholds": dict(i.thresholds)} for i in handbook.warning_items],
            "towns": [(n.code, n.name) for n in org.places()]}


def _checked_sample(handbook: Handbook, sample: SampleAlert) -> tuple[Any, float, PlatformNode]:
    try:
        item = handbook.item(sample.item_code)
    except LookupError:
        raise _field_error("item_code", _l("Choose a warning item of this handbook.")) from None
    if sample.level not in item.thresholds:
        raise _field_error("level", _l("Warning item %(item)s has no %(level)s level; choose one "
                                       "of its levels.", item=item.code, level=sample.level))
    value = sample.value if sample.value is not None else item.thresholds[sample.level]
    town = db.session.scalar(select(PlatformNode).where(
        PlatformNode.code == sample.town, PlatformNode.kind.in_(PLACE_KINDS)))
    if town is None:
        raise _field_error("town", _l("Choose a street or town."))
    return item, value, town


def start_run(actor: User, version_id: int, sample: SampleAlert, *, note: str = "",
              now: datetime) -> HandbookTestRun:
    """Start a test case on a draft (or a version in review) from a sample alert."""
    version = _designed_version(actor, version_id)
    if version.status not in RUNNABLE:
        raise Conflict(_l("Only a draft or a version in review can be test-run; start a draft "
                          "from this version first."), code="not_a_draft")
    handbook = _handbook(version)
    try:
        case_engine.compiled(version)
    except DefinitionError as exc:
        raise Conflict(_l("This version does not compile; check it in the process designer "
                          "first: %(problem)s", problem=problem_text.text(exc.problems[0])
                          if exc.problems else ""), code="does_not_compile") from None
    item, value, town = _checked_sample(handbook, sample)
    if len(note) > 500:
        raise _field_error("note", _l("At most 500 characters."))
    case_no = f"TEST-{version.id}-{secrets.token_hex(4).upper()}"
    request = case_opening.NewCase(
        scenario=handbook.scenario, item_code=item.code, level=sample.level, value=value,
        observed_at=now, point_code=f"TEST-{item.code}", point=None, node=town,
        scenario_node=org.node_by_code(f"scenario.{handbook.scenario}"),
        dedup_key=f"test|{case_no}")
    case = case_opening.start_case(version, request, case_no=case_no, now=now, is_test=True)
    run = HandbookTestRun(version_id=version.id, case_id=case.id, item_code=item.code,
                          level=sample.level, value=value, clock_at=now,
                          content_hash=version.content_hash, note=note.strip(),
                          created_by_id=actor.id, created_at=now)
    db.session.add(run)
    db.session.flush()
    audit.record(actor=actor, action="handbook.test_run", object_type="handbook_version",
                 object_id=version.id, at=now,
                 after={"run": run.id, "case_no": case_no, "item": item.code,
                        "level": sample.level, "town": town.code})
    return run


def runs_of(version_id: int) -> list[HandbookTestRun]:
    """A version's test runs, newest first (the reviewer reads them)."""
    return list(db.session.scalars(select(HandbookTestRun).where(
        HandbookTestRun.version_id == version_id).order_by(HandbookTestRun.id.desc())))


def get_run(actor: User, run_id: int, *, design: bool = False) -> HandbookTestRun:
    """A run, for anyone who may read handbooks, as the version pages are (`design`: for who
    may design this one)."""
    run = db.session.get(HandbookTestRun, run_id)
    if run is None:
        raise NotFound(_l("No such test run."))
    if design:
        require(actor, "handbook.design", run.version.node)
    else:
        require(actor, "handbook.view")
    return run


def _locked(actor: User, run_id: int, *, moving: bool = True) -> HandbookTestRun:
    """The run, its case locked. `moving`: the run is to move on, which its case can only do
    on the files it started on (the engine state was made with them)."""
    run = get_run(actor, run_id, design=True)
    # Serialise changes to one run (and its case) as the case service does for tasks.
    db.session.scalar(select(Case).where(Case.id == run.case_id).with_for_update(of=Case))
    db.session.refresh(run)
    db.session.refresh(run.version)  # a save of the draft may have changed its files since
    if moving:
        check_current(run)
    return run


def check_current(run: HandbookTestRun) -> None:
    """Refuse to move a run whose draft was saved with other files since it started."""
    if run.outdated:
        raise Conflict(_l("The draft was saved with other files after this test run started, "
                          "so its test case no longer matches the draft. Start a new test run "
                          "(this one stays as it is for reference, or delete it)."),
                       code="run_outdated")


def outdated_runs(version: HandbookVersion, new_hash: str) -> list[HandbookTestRun]:
    """The open test runs of `version` that saving it with files of `new_hash` leaves behind."""
    return [r for r in runs_of(version.id)
            if r.case.status == "open" and r.content_hash is not None
            and r.content_hash == version.content_hash and r.content_hash != new_hash]


def open_tasks(run: HandbookTestRun) -> list[CaseTask]:
    return list(db.session.scalars(select(CaseTask).where(
        CaseTask.case_id == run.case_id, CaseTask.status == "ready").order_by(CaseTask.id)))


def complete_task(actor: User, run_id: int, task_row_id: int, form: dict[str, Any]) -> Case:
    """Complete one of the test case's tasks at the run's clock, whatever its lane: the
    designer plays every role. Form rules and the engine check the values as for a real case."""
    run = _locked(actor, run_id)
    task = db.session.get(CaseTask, task_row_id)
    if task is None or task.case_id != run.case_id:
        raise NotFound(_l("No such task."))
    if task.status != "ready":
        raise Conflict(_l("This task is no longer open; reload the case."), code="task_gone")
    return cases.complete_checked(actor, task, form, now=run.clock_at)


def advance_clock(actor: User, run_id: int, *, minutes: int) -> tuple[HandbookTestRun, int]:
    """Move the run's virtual clock forward and fire every timer that falls due on the way,
    each at its own time. Returns the run and how many timer steps fired."""
    if minutes <= 0:
        raise _field_error("minutes", _l("Move the clock forward by at least one minute."))
    step = timedelta(minutes=minutes)
    if step > MAX_ADVANCE:
        raise _field_error("minutes", _l("Move the clock by at most 30 days at a time."))
    run = _locked(actor, run_id)
    target = run.clock_at + step
    case = run.case
    fired = 0
    while (case.status == "open" and case.next_timer_at is not None
           and case.next_timer_at < target and fired < MAX_TIMER_STEPS):
        # Timers fire strictly after their due time, as the scheduler sees them.
        moment = max(case.next_timer_at + timedelta(seconds=1), run.clock_at)
        loaded = case_engine.load(case)
        result = loaded.instance.fire_timers(at=moment)
        completed = case_engine.record_step(loaded, result, now=moment)
        notify.after_step(case, completed, now=moment)
        run.clock_at = moment
        fired += 1
        if result.failure is not None:
            break
    run.clock_at = max(run.clock_at, target)
    db.session.flush()
    return run, fired


def retry_run(actor: User, run_id: int) -> bool:
    """Run the failed step of a stuck test case again at the run's clock (a test case is not
    on the technical administrators' list of stuck cases: its designers retry it)."""
    from app.services import stuck

    run = _locked(actor, run_id)
    if run.case.stuck_since is None:
        raise Conflict(_l("This case is not stuck (any more)."), code="not_stuck")
    return stuck._retry(run.case, actor=actor, now=run.clock_at)


def delete_run(actor: User, run_id: int, *, now: datetime) -> str:
    """Delete a test run with its test case and everything recorded on it (audited)."""
    run = _locked(actor, run_id, moving=False)
    case = run.case
    if not case.is_test:  # never reached: a run's case is a test case from its start
        raise Conflict(_l("Only a test case can be deleted."), code="not_a_test_case")
    snapshot = {"run": run.id, "version": run.version_id, "case_no": case.case_no,
                "status": case.status, "events": case.event_seq, "note": run.note}
    version_id = run.version_id
    db.session.delete(run)
    for model in (CaseTask, CaseComment, Attachment, Notification, DataQualityIssue, CaseEvent):
        db.session.execute(delete(model).where(model.case_id == case.id))
    db.session.delete(case)
    db.session.flush()
    audit.record(actor=actor, action="handbook.test_run_delete",
                 object_type="handbook_version", object_id=version_id, before=snapshot,
                 at=now)
    return str(snapshot["case_no"])


@dataclass(frozen=True)
class Notice:
    at: datetime
    kind: str
    to: list[str]
    body: str


def simulated_notices(run: HandbookTestRun) -> list[Notice]:
    """Whom the test case's notices would have reached, in order."""
    rows = db.session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == run.case_id, CaseEvent.kind == "test_notice")
        .order_by(CaseEvent.seq))
    return [Notice(e.at, str(e.data.get("notice")), list(e.data.get("to") or []),
                   str(e.data.get("body") or "")) for e in rows]
