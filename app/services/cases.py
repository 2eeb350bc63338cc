"""Cases: open one from an alert, and the actions people take on it (claim, release,
complete a task, comment, attach evidence). Used by the web pages and the API alike."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime
from typing import Any

from sqlalchemy import exists, null, select
from sqlalchemy.orm import joinedload, lazyload, undefer
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from app.extensions import db
from app.i18n import _l
from app.models import (
    ATTACHMENT_EXTENSIONS,
    LEVEL_RANK,
    Attachment,
    Case,
    CaseComment,
    CaseFollower,
    CaseTask,
    HandbookVersion,
    User,
)
from app.services import case_engine, form_rules, notify, stuck
from app.services.case_variables import level_variables
from app.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.services.handbook_data import (
    Handbook,
    department_codes,
    limits_for,
    parse_handbook,
    platform_scenarios,
)
from app.services.handbook_schema import parse_duration
from app.services.permissions import can, may_take, require
from app.services.steps import version_index
from workflows import FormValidationError, TaskNotFoundError, TaskNotReadyError

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
ATTACHMENT_TYPES = frozenset(ATTACHMENT_EXTENSIONS)
MAX_FILENAME_CHARS = 200

_HANDBOOKS: dict[str, Handbook] = {}


def handbook_of(version: HandbookVersion) -> Handbook:
    """The handbook data stored in a version (parsed once per content hash)."""
    found = _HANDBOOKS.get(version.content_hash)
    if found is None:
        name = f"handbooks/scenarios/{version.handbook_key}.json"
        found = parse_handbook(f"{version.handbook_key}.json", version.files[name],
                               department_codes(), platform_scenarios())
        _HANDBOOKS[version.content_hash] = found
    return found


def handbook_or_none(version: HandbookVersion) -> Handbook | None:
    """The handbook data of a scenario version; None for handbooks without such data
    (warning publication)."""
    if version.handbook_key in platform_scenarios():
        return handbook_of(version)
    return None


def _may_view(actor: User, case: Case) -> None:
    if can(actor, "case.view", case):
        return
    # Someone a task of the case was (or is) addressed to may follow the case.
    for task in db.session.scalars(select(CaseTask).where(CaseTask.case_id == case.id)):
        if may_take(actor, task):
            return
    require(actor, "case.view", case)


def get_case(actor: User, case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    # A draft's test case lives in the designer's sandbox, not among the cases.
    if case is None or case.is_test:
        raise NotFound(_l("No such case."))
    _may_view(actor, case)
    return case


def get_case_by_no(actor: User, case_no: str) -> Case:
    case = db.session.scalar(select(Case).where(Case.case_no == case_no,
                                                Case.is_test.is_(False)))
    if case is None:
        raise NotFound(_l("No such case."))
    _may_view(actor, case)
    return case


def _task(task_row_id: int, *, lock: bool = False) -> CaseTask:
    """The task row; with `lock`, after taking its case's row lock."""
    if lock:
        return _locked_task(task_row_id)[0]
    row = db.session.scalar(select(CaseTask).where(CaseTask.id == task_row_id))
    if row is None or row.case.is_test:  # a draft's test run is worked on its own page
        raise NotFound(_l("No such task."))
    return row


def _locked_task(task_row_id: int, *, for_step: bool = False
                 ) -> tuple[CaseTask, list[CaseTask], bool | None]:
    """The task row after taking its case's row lock, every task row of that case, and
    (`for_step`) whether anyone follows the case.

    Serialise writers on the case row: on PostgreSQL a real row lock; the optimistic counter
    on the case catches anything that still slips through. The rows are read after the lock,
    so they are as the writer before us left them. `for_step`: the case's engine state, its
    handbook version and whether it has followers come along in the lock's statement (the
    step needs all three)."""
    followed_now = exists().where(CaseFollower.case_id == Case.id)
    query = (select(Case, followed_now if for_step else null()).where(
        Case.id == select(CaseTask.case_id).where(CaseTask.id == task_row_id)
        .scalar_subquery())
        .with_for_update(of=Case).execution_options(populate_existing=True))
    if for_step:
        query = query.options(undefer(Case.state), joinedload(Case.handbook_version))
    found_case = db.session.execute(query).first()
    if found_case is None:
        raise NotFound(_l("No such task."))
    case, followed = found_case
    # Who claimed a task is asked only when someone else did: read then, not joined here.
    rows = list(db.session.scalars(select(CaseTask).where(CaseTask.case_id == case.id)
                                   .options(lazyload(CaseTask.case),
                                            lazyload(CaseTask.claimed_by))
                                   .execution_options(populate_existing=True)))
    for row in rows:  # the case just read and locked, not a second copy
        set_committed_value(row, "case", case)
    found = next((r for r in rows if r.id == task_row_id), None)
    if found is None or case.is_test:  # a draft's test run is worked on its own page
        raise NotFound(_l("No such task."))
    return found, rows, (bool(followed) if for_step else None)


def _may_act(actor: User, task: CaseTask) -> None:
    # The task's own lane decides: a department lane reaches beyond the case's town and
    # scenario (big loop, warning publication).
    if not may_take(actor, task):
        require(actor, "case.act", task.case)
        raise Forbidden(_l("This task is for another role or area."), code="not_your_task")
    _separate(actor, task)


def _separate(actor: User, task: CaseTask) -> None:
    """Four eyes: a step whose BPMN names `separate_from` steps (the verification of a
    warning names its draft) is never done by whoever completed one of those."""
    done_by_actor = _done_by(actor, task)
    if done_by_actor is not None:
        raise Forbidden(_l("You completed %(step)s of this case; another person must do "
                           "%(this)s.", step=done_by_actor.name, this=task.name),
                        code="separation_of_duties")


def _done_by(actor: User, task: CaseTask) -> CaseTask | None:
    version = db.session.get(HandbookVersion, task.case.handbook_version_id)
    if version is None:
        return None
    index = version_index(version)
    earlier = [e.strip() for e in index.properties(task.process_id, task.element_id)
               .get("separate_from", "").split(",") if e.strip()]
    if not earlier:
        return None
    return db.session.scalar(select(CaseTask).where(
        CaseTask.case_id == task.case_id, CaseTask.element_id.in_(earlier),
        CaseTask.completed_by_id == actor.id).limit(1))


def can_act(actor: User, task: CaseTask) -> bool:
    """May `actor` work on this task now: it is open, not someone else's, in the actor's
    lane, and not a step the actor must leave to another person. The one rule the pages and
    the API show (the actions themselves check the same through `_may_act`)."""
    return (task.status == "ready" and task.claimed_by_id in (None, actor.id)
            and may_take(actor, task) and _done_by(actor, task) is None)


takes_part = can_act  # the earlier name


def _still_ready(task: CaseTask) -> None:
    if task.status != "ready":
        who = task.completed_at and db.session.get(User, task.completed_by_id or 0)
        raise Conflict(
            _l("This task was already completed by %(name)s; reload the case.",
               name=who.display_name if who else "-") if who else
            _l("This task is no longer open; reload the case."), code="task_gone")


def claim(actor: User, task_row_id: int, *, now: datetime) -> CaseTask:
    task = _task(task_row_id, lock=True)
    _may_act(actor, task)
    _still_ready(task)
    if task.claimed_by_id not in (None, actor.id):
        raise Conflict(_l("%(name)s has already claimed this task.",
                          name=task.claimed_by.display_name if task.claimed_by else "-"),
                       code="claimed_by_other")
    task.claimed_by_id, task.claimed_at = actor.id, now
    case_engine.add_event(task.case, kind="claim", at=now, actor=actor,
                          version_hash=_hash(task.case), element_id=task.element_id,
                          element_name=task.name)
    db.session.flush()
    return task


def task_to_act_on(actor: User, task_row_id: int) -> CaseTask:
    """The task, if `actor` may act on it (404, 403 otherwise): checked before a request's
    input is read."""
    task = _task(task_row_id)
    _may_act(actor, task)
    return task


def release(actor: User, task_row_id: int, *, now: datetime) -> CaseTask:
    task = _task(task_row_id, lock=True)
    if task.claimed_by_id != actor.id:
        _may_act(actor, task)  # someone else's task is not even a conflict to outsiders
    _still_ready(task)
    if task.claimed_by_id != actor.id:
        raise Conflict(_l("Only the person who claimed a task can release it."),
                       code="not_claimed_by_you")
    task.claimed_by_id, task.claimed_at = None, None
    case_engine.add_event(task.case, kind="release", at=now, actor=actor,
                          version_hash=_hash(task.case), element_id=task.element_id,
                          element_name=task.name)
    db.session.flush()
    return task


def _hash(case: Case) -> str:
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    return version.content_hash if version else ""


def complete(actor: User, task_row_id: int, form: dict[str, Any], *, now: datetime) -> Case:
    """Complete a human task with its form; exactly one of two concurrent callers wins."""
    task, rows, followed = _locked_task(task_row_id, for_step=True)
    _may_act(actor, task)
    _still_ready(task)
    if task.claimed_by_id not in (None, actor.id):
        raise Conflict(_l("%(name)s has claimed this task.",
                          name=task.claimed_by.display_name if task.claimed_by else "-"),
                       code="claimed_by_other")
    return complete_checked(actor, task, form, now=now, tasks=rows, followed=followed)


def complete_checked(actor: User, task: CaseTask, form: dict[str, Any], *,
                     now: datetime, tasks: list[CaseTask] | None = None,
                     followed: bool | None = None) -> Case:
    """Complete a ready task whose actor has been checked (by lane, or as the designer
    playing every lane of a test case): form rules, engine step, notices, level change.
    `tasks`: every task row of the case, read after its lock; `followed`: whether anyone
    follows the case (both read when needed if not given)."""
    case = task.case
    loaded = case_engine.load(case)
    loaded.tasks = tasks
    problems = form_rules.check(loaded.compiled.form_fields(task.process_id, task.element_id),
                                form)
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."), details=problems)
    try:
        result = loaded.instance.complete_task(task.task_id, form, actor=actor.username, at=now)
    except FormValidationError as exc:
        raise ValidationFailed(_l("Please correct the marked fields."), details={
            k: [form_rules.describe(p)] for k, p in exc.problems.items()}) from None
    except (TaskNotFoundError, TaskNotReadyError):
        raise Conflict(_l("This task is no longer open; reload the case."),
                       code="task_gone") from None
    task.claimed_by_id = task.claimed_by_id or actor.id
    task.completed_by_id, task.completed_at = actor.id, now
    if (case.accepted_at is None
            and loaded.index.step_of(task.process_id, task.element_id) == "accept"):
        case.accepted_at = now
    level_before = case.level
    completed = case_engine.record_step(loaded, result, now=now, actor=actor)
    notify.after_step(case, completed, now=now, followed=followed)
    _keep_lane(actor, task, loaded.opened, now=now)
    if case.level != level_before and case.status == "open":
        relevel(loaded, case.level, now=now)
    if any("broadcast_message" in c.properties for c in completed):
        from app.services.publications import broadcast

        broadcast(case, completed, loaded.instance.data, now=now)
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict(_l("Someone else changed this case at the same moment; reload it."),
                       code="concurrent_change") from None
    return case


def _keep_lane(actor: User, done: CaseTask, opened: list[CaseTask], *,
               now: datetime) -> None:
    """The person who did a step keeps the case's next step in the same lane (claimed for
    them, as if they had claimed it) until they release it: nobody else in the role picks up
    half of someone's work, and they need not claim again at every step. Only role lanes of
    the case's area: a department lane (big loop, warning publication) is the department's to
    share out. `opened` are the rows the step made ready (stored by `record_step`)."""
    if done.department_id is not None:
        return
    for row in opened:
        if (row.status != "ready" or row.role != done.role or row.department_id is not None
                or row.claimed_by_id is not None):
            continue
        if not may_take(actor, row) or _done_by(actor, row) is not None:
            continue
        row.claimed_by_id, row.claimed_at = actor.id, now
        case_engine.add_event(row.case, kind="claim", at=now, actor=actor,
                              version_hash=_hash(row.case), element_id=row.element_id,
                              element_name=row.name, data={"kept_from": done.element_id})


def add_comment(actor: User, case: Case, body: str, *, now: datetime,
                measures: list[str] | None = None) -> CaseComment:
    """A comment on the case; `measures` names the standard measures it reports as carried
    out (kept with the event, so that the next form starts from them)."""
    require(actor, "case.act", case)
    text = body.strip()
    if not text:
        raise ValidationFailed(_l("Write something first."),
                               details={"body": [str(_l("Required."))]})
    if len(text) > 4000:
        raise ValidationFailed(_l("At most 4000 characters."),
                               details={"body": [str(_l("At most 4000 characters."))]})
    comment = CaseComment(case_id=case.id, author_id=actor.id, body=text, created_at=now)
    db.session.add(comment)
    case_engine.add_event(case, kind="comment", at=now, actor=actor, version_hash=_hash(case),
                          data={"body": text, **({"measures": measures} if measures else {})})
    db.session.flush()
    return comment


def add_attachment(actor: User, case: Case, *, filename: str, content: bytes,
                   now: datetime) -> Attachment:
    """Store evidence. Its type is detected from the bytes (what the client declares is not
    asked); `filename` is kept, cleaned, as the name people see."""
    require(actor, "case.act", case)
    if not content:
        raise ValidationFailed(_l("The file is empty."), details={"file": ["0"]})
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise ValidationFailed(_l("The file is larger than 10 MB."),
                               details={"file": [str(len(content))]})
    content_type = detect_type(content)
    if content_type is None:
        message = _l("Only JPEG, PNG, WebP images and PDF documents are accepted.")
        raise ValidationFailed(message, details={"file": [str(message)]})
    attachment = Attachment(case_id=case.id, uploaded_by_id=actor.id,
                            filename=display_filename(filename), content_type=content_type,
                            size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                            content=content, created_at=now)
    db.session.add(attachment)
    db.session.flush()
    case_engine.add_event(case, kind="attachment", at=now, actor=actor,
                          version_hash=_hash(case),
                          data={"attachment": attachment.id, "filename": attachment.filename,
                                "stored_name": attachment.stored_name,
                                "content_type": content_type,
                                "sha256": attachment.sha256, "size": attachment.size})
    return attachment


def detect_type(content: bytes) -> str | None:
    """The allowed type the bytes are (by their signature), or None for anything else."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def display_filename(raw: str) -> str:
    """The client's file name as display text: no folders, no control or formatting
    characters (a right-to-left override can make "gnp.exe" read as "exe.png"), single
    spaces, at most MAX_FILENAME_CHARS characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if c.isspace() else c for c in name
                   if c.isspace() or not unicodedata.category(c).startswith("C"))
    name = " ".join(name.split())
    return name[:MAX_FILENAME_CHARS] or "evidence"


def raise_level(case: Case, level: str, value: float, *, now: datetime) -> None:
    """A higher reading reached the case: tell its process (level-upgrade message), then bring
    every deadline to the new level's limits."""
    if LEVEL_RANK.get(level, 0) <= LEVEL_RANK.get(case.highest_level, 0):
        return
    loaded = stuck.load_or_mark(case, now=now)
    if loaded is None:
        case.highest_level = level
        return
    handbook = handbook_of(loaded.version)
    payload = {"level": level, "value": value,
               **level_variables(handbook, level, case.opened_at)}
    _send(loaded, "level_upgrade", payload, now, relevel_to=level)


def relevel(loaded: case_engine.Loaded, level: str, *, now: datetime) -> None:
    """Make `level` the case's level everywhere: process variables and waiting timers (the
    engine recomputes them from when each was armed), the case's closing deadline, the open
    tasks' level and due time (the inbox and overdue lists read those). Limits count from the
    push, so the result equals a case opened at `level` at the same moment."""
    case = loaded.case
    handbook = handbook_or_none(loaded.version)
    if handbook is None or level not in handbook.time_limits:
        case.level = level
        case.highest_level = _higher(case.highest_level, level)
        return
    values = {"level": level, **level_variables(handbook, level, case.opened_at)}
    result = loaded.instance.update_data(values, actor="system", at=now)
    case.level = level
    case.highest_level = _higher(case.highest_level, level)
    case.due_at = case.opened_at + parse_duration(limits_for(handbook, level).due)
    completed = case_engine.record_step(loaded, result, now=now)
    case_engine.relevel_tasks(loaded, level, values)
    notify.after_step(case, completed, now=now)


def _higher(a: str | None, b: str) -> str:
    return b if a is None or LEVEL_RANK.get(b, 0) > LEVEL_RANK.get(a, 0) else a


def back_to_normal(case: Case, value: float, *, now: datetime) -> None:
    loaded = stuck.load_or_mark(case, now=now)
    if loaded is not None:
        _send(loaded, "back_to_normal", {"value": value}, now)


def send_message(case: Case, message: str, payload: dict[str, Any], *,
                 now: datetime, expected_only: bool = False) -> bool:
    """Deliver a message (weather warning, ...) into one running case's process; False when
    the process does not expect it (recorded as ignored unless `expected_only`) or its state
    cannot be loaded (the case is then marked stuck)."""
    loaded = stuck.load_or_mark(case, now=now)
    if loaded is None:
        return False
    return _send(loaded, message, payload, now, record_ignored=not expected_only)


def _send(loaded: case_engine.Loaded, message: str, payload: dict[str, Any],
          now: datetime, *, relevel_to: str | None = None, record_ignored: bool = True) -> bool:
    from workflows import EventNotExpectedError

    case = loaded.case
    level_before = case.level
    handled = True
    try:
        result = loaded.instance.send_message(message, payload, actor="system", at=now)
    except EventNotExpectedError:
        handled = False
        if record_ignored:
            case_engine.add_event(case, kind="message_ignored", at=now,
                                  version_hash=loaded.version.content_hash,
                                  data={"message": message, "payload": payload})
    else:
        completed = case_engine.record_step(loaded, result, now=now)
        notify.after_step(case, completed, now=now)
    target = relevel_to or (case.level if case.level != level_before else None)
    if target is not None and case.status == "open" and not loaded.instance.finished:
        relevel(loaded, target, now=now)
    return handled
