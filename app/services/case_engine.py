"""One engine step of a case, stored in one go: state, inbox projection, next timer, events.

Every call that moves a case's process ends in `record_step`, inside the caller's
transaction; nothing is committed here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, or_, select
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db
from app.models import (
    LEVEL_RANK,
    Case,
    CaseEvent,
    CaseTask,
    HandbookVersion,
    User,
)
from app.models.base import utc_text
from app.services import row_batches
from app.services.bpmn_index import STEP, VersionIndex
from app.services.engine import compiled, runtime
from app.services.handbook_schema import parse_duration
from app.services.lanes import assignee
from app.services.steps import version_index
from workflows import CompiledVersion, Instance, StepResult

# Which process variable sets a task's deadline, by the task's step mark, when the task does
# not name one itself (a `due` property on the user task wins).
DEFAULT_DUE_VARIABLE = {
    "accept": "accept_limit",
    "dispose": "on_site_limit",
    "feedback": "feedback_limit",
}

# Closed loops, narrowest first (DOMAIN.md §4): a case's loop only ever widens.
LOOP_RANK = {"small": 0, "medium": 1, "big": 2}


# The milestones the figures of Art 16/17 count, stamped on the case by the step that reaches
# them: when a task of the step (or of the process) is created, and when it is completed, with
# the deadline the task had at that moment (the limit of the level then in force). Steps are
# found by their `step` mark, so a designer may rename or redraw them. The medium loop's task
# may carry the optional mark `medium_loop`; unmarked, its conventional id is recognised.
CREATED_MILESTONES = {"accept": "pushed_at", "medium_loop": "medium_loop_at"}
MEDIUM_LOOP_ELEMENT = "Activity_medium_loop"
PROCESS_MILESTONES = {"big_loop": "big_loop_at"}
COMPLETED_MILESTONES: dict[str, tuple[str, str | None]] = {
    "accept": ("accepted_at", "accept_due_at"),
    "dispose": ("arrived_at", "arrive_due_at"),
    "feedback": ("feedback_at", "feedback_due_at"),
    "cancel": ("cancelled_at", None),
}
LOOP_OF_MILESTONE = {"medium_loop_at": "medium", "big_loop_at": "big"}


def _step(index: VersionIndex, process_id: str, element_id: str) -> str | None:
    step = index.step_of(process_id, element_id)
    if step is None and element_id == MEDIUM_LOOP_ELEMENT:
        return "medium_loop"
    return step


def _stamp_created(case: Case, index: VersionIndex, process_id: str, element_id: str,
                   now: datetime) -> None:
    step = _step(index, process_id, element_id)
    for column in (CREATED_MILESTONES.get(step or ""), PROCESS_MILESTONES.get(process_id)):
        if column is None or getattr(case, column) is not None:
            continue
        setattr(case, column, now)
        loop = LOOP_OF_MILESTONE.get(column)
        if loop == "big" or (loop == "medium" and case.loop_level == "small"):
            case.loop_level = loop


def _stamp_completed(case: Case, index: VersionIndex, row: CaseTask) -> None:
    found = COMPLETED_MILESTONES.get(_step(index, row.process_id, row.element_id) or "")
    if found is None or row.completed_at is None:
        return
    at_column, due_column = found
    if getattr(case, at_column) is None:
        setattr(case, at_column, row.completed_at)
    if due_column is not None and getattr(case, due_column) is None:
        setattr(case, due_column, row.due_at)


@dataclass
class Loaded:
    case: Case
    version: HandbookVersion
    compiled: CompiledVersion
    index: VersionIndex
    instance: Instance
    # Task rows the last recorded step made ready (created, or reopened after a failure):
    # the caller acts on them without selecting them again.
    opened: list[CaseTask] = field(default_factory=list)
    # Every task row of the case when the caller read them after locking it (else None):
    # the next recorded step syncs them without selecting them again, once.
    tasks: list[CaseTask] | None = None


def load(case: Case) -> Loaded:
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    assert version is not None
    spec = compiled(version)
    instance = runtime().load(spec, case.state)
    return Loaded(case, version, spec, version_index(version), instance)


def _data_text(data: Mapping[str, Any]) -> str:
    """An event's data as the chain hashes it: keys sorted, characters as they are; on
    PostgreSQL the same text is what is stored."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


def _chained(prev: str, seq: int, kind: str, at: datetime, actor: str | None,
             element_id: str | None, old_state: str | None, new_state: str | None,
             data_text: str) -> str:
    """The hash of one event chained to the previous one, from its data already encoded.

    The text hashed is the event's fields as one JSON object with sorted keys (the form the
    chain has always used), put together around the encoded data instead of encoding it
    again."""
    before = json.dumps({"actor": actor, "at": at.isoformat()}, ensure_ascii=False)
    after = json.dumps({"element": element_id, "kind": kind, "new": new_state,
                        "old": old_state, "seq": seq}, ensure_ascii=False)
    payload = f'{before[:-1]}, "data": {data_text}, {after[1:]}'
    return hashlib.sha256((prev + payload).encode("utf-8")).hexdigest()


def _digest(prev: str, seq: int, kind: str, at: datetime, actor: str | None,
            element_id: str | None, old_state: str | None, new_state: str | None,
            data: Mapping[str, Any]) -> str:
    """The hash of one event chained to the previous one; writing and checking share it."""
    return _chained(prev, seq, kind, at, actor, element_id, old_state, new_state,
                    _data_text(data))


def add_event(case: Case, *, kind: str, at: datetime, version_hash: str,
              actor: User | None = None, actor_name: str | None = None,
              element_id: str | None = None, element_name: str | None = None,
              lane: str | None = None, old_state: str | None = None,
              new_state: str | None = None, data: dict[str, Any] | None = None
              ) -> CaseEvent | None:
    """Append one event to the case's hash-chained history (while a `Writes` collects, to
    its rows, written with them; else to the session)."""
    collecting = _COLLECTING.get()
    if collecting is not None:
        collecting.events.append(_event_row(
            case, kind=kind, at=at, version_hash=version_hash, actor=actor,
            actor_name=actor_name, element_id=element_id, element_name=element_name, lane=lane,
            old_state=old_state, new_state=new_state, data=data))
        return None
    row = _event_row(
        case, kind=kind, at=at, version_hash=version_hash, actor=actor, actor_name=actor_name,
        element_id=element_id, element_name=element_name, lane=lane, old_state=old_state,
        new_state=new_state, data=data)
    del row["data_json"]
    event = CaseEvent(**row)
    db.session.add(event)
    return event


def _event_row(case: Case, *, kind: str, at: datetime, version_hash: str,
               actor: User | None = None, actor_name: str | None = None,
               element_id: str | None = None, element_name: str | None = None,
               lane: str | None = None, old_state: str | None = None,
               new_state: str | None = None, data: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """The next event of the case as column values, chained to the one before it, and under
    `data_json` its data as the chain hashed it (`_insert_events` stores that text)."""
    case.event_seq += 1
    name = actor.username if actor is not None else actor_name
    prev = case.last_event_hash
    data = data or {}
    data_json = _data_text(data)
    digest = _chained(prev, case.event_seq, kind, at, name, element_id, old_state, new_state,
                      data_json)
    case.last_event_hash = digest
    return {"case_id": case.id, "seq": case.event_seq, "at": at, "kind": kind,
            "actor_id": actor.id if actor else None, "actor_name": name,
            "version_hash": version_hash, "element_id": element_id,
            "element_name": element_name, "lane": lane, "old_state": old_state,
            "new_state": new_state, "data": data, "prev_hash": prev, "hash": digest,
            "data_json": data_json}


@dataclass(frozen=True)
class Completed:
    """An element that finished during the step, with its notification properties."""

    process_id: str
    element_id: str
    name: str
    properties: dict[str, str]
    by_person: bool = False  # a user task: a step the case's followers are told of


def _due(data: Mapping[str, Any], properties: dict[str, str], element_id: str,
         now: datetime) -> datetime | None:
    variable = (properties.get("due") or DEFAULT_DUE_VARIABLE.get(properties.get(STEP, ""))
                or "close_limit")
    value = data.get(variable)
    if not isinstance(value, str):
        return None
    try:
        return now + parse_duration(value)
    except ValueError:
        return None


class Writes:
    """The writes of several steps stored together (the new cases of a batch): their case
    and task rows go out in one statement per table, and their histories in one, instead of
    a few statements per case. Every case's events are chained as they are made, so each
    chain is the one a step stored alone would have written.

    New cases given to `new_case` (their ids already taken from the sequence) are inserted
    with their engine state as the engine encoded it (`row_batches`): by `send`, with the
    history so far, while the caller goes on (`row_batches.WriteBehind`), or by `store()`."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.cases: dict[int, Case] = {}  # new cases, by id
        self.unsent: list[Case] = []  # those not written yet
        self.states: dict[int, str] = {}  # their engine states as JSON text
        self.tasks: list[CaseTask] = []
        self.behind = row_batches.WriteBehind()

    def new_case(self, case: Case) -> None:
        """A case not written yet (its id taken from the sequence)."""
        self.cases[case.id] = case
        self.unsent.append(case)

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Within this block, `add_event` (the notices' reroutes, for instance) appends to
        these rows instead of the session."""
        token = _COLLECTING.set(self)
        try:
            yield
        finally:
            _COLLECTING.reset(token)

    def event(self, case: Case, **fields: Any) -> None:
        """Append one event to the case's chain, stored with the rest."""
        self.events.append(_event_row(case, **fields))

    def save_state(self, case: Case, instance: Instance) -> None:
        if case.id in self.cases:
            # Characters as they are (the smaller text); `row_batches` writes one holding an
            # unpaired surrogate apart, escaped.
            self.states[case.id] = instance.dump_text(ensure_ascii=False)
        else:
            case.state = instance.save()

    def send(self, behind: bool = True) -> None:
        """Write the new cases so far, and the history so far: behind the caller's back
        (`behind=False`: at once). The case rows are final: columns set afterwards are
        written by the session's flush."""
        cases, self.unsent = self.unsent, []
        row_batches.insert_new(cases, encoded={"state": [self.states.pop(c.id) for c in cases]},
                               behind=self.behind if behind else None)
        if self.events:
            _insert_events(self.events, self.behind.execute if behind else None)
            self.events = []

    def store(self) -> None:
        """Wait for everything sent, then write what is left (nothing is left to overlap
        it with)."""
        self.behind.wait()
        self.send(behind=False)
        row_batches.insert_new(self.tasks)
        for task in self.tasks:  # the case just written, not a query for it
            if task.case_id in self.cases:
                set_committed_value(task, "case", self.cases[task.case_id])
        db.session.flush()
        self.events, self.cases, self.unsent, self.states, self.tasks = [], {}, [], {}, []


_COLLECTING: ContextVar[Writes | None] = ContextVar("case_engine_writes", default=None)


def record_step(loaded: Loaded, result: StepResult, *, now: datetime,
                actor: User | None = None, writes: Writes | None = None) -> list[Completed]:
    """Store everything a step changed. Returns the elements that completed (to notify).

    With `writes`, nothing is written yet: the step's rows wait in it (and in the session)
    for `writes.store()`."""
    case, instance, index = loaded.case, loaded.instance, loaded.index
    version_hash = loaded.version.content_hash
    completed: list[Completed] = []
    rows = []
    for event in result.events:
        rows.append(_event_row(
            case, kind="task", at=event.at, version_hash=version_hash, actor=actor,
            actor_name=event.actor, element_id=event.element_id,
            element_name=event.element_name, lane=event.lane, old_state=event.old_state,
            new_state=event.new_state,
            data={"process": event.process_id, "task": event.task_id,
                  "type": event.element_type, "delta": event.data_delta}))
        if event.new_state == "COMPLETED":
            facts = index.get(event.process_id, event.element_id)
            # Steps that notify someone, and every person's step (a case's followers hear
            # of those); consumers read the properties they care about.
            if facts is not None and (facts.properties.get("notify")
                                      or event.element_type == "UserTask"):
                completed.append(Completed(event.process_id, event.element_id,
                                           event.element_name or facts.name, facts.properties,
                                           event.element_type == "UserTask"))
    rows.append(_event_row(case, kind="input", at=now, version_hash=version_hash,
                           actor=actor, data=result.input.to_dict()))
    if result.failure is not None:
        # The step stopped: the case is stuck until the failed task runs again (retry).
        case.error = result.failure.message
        case.failure = {**result.failure.to_dict(), "at": now.isoformat()}
        if case.stuck_since is None:
            case.stuck_since = now
        rows.append(_event_row(case, kind="error", at=now, version_hash=version_hash,
                               element_id=result.failure.element_id,
                               data=result.failure.to_dict()))
    if writes is None:
        _insert_events(rows)
        case.state = instance.save()
    else:
        writes.events.extend(rows)
        writes.save_state(case, instance)
    case.next_timer_at = instance.next_timer_due()
    data = instance.data_view()  # read here and by the sync below, not kept
    if isinstance(data.get("level"), str) and data["level"] != case.level:
        case.level = data["level"]
    if LEVEL_RANK.get(case.level, 0) > LEVEL_RANK.get(case.highest_level, 0):
        case.highest_level = case.level
    # The loop a case is handled in: raised when the disposal escalates it (`escalate` of the
    # handbooks' dispose form) or a handbook records `loop_level`; never lowered.
    loop = data.get("loop_level") if data.get("loop_level") in LOOP_RANK else \
        data.get("escalate") if data.get("escalate") in ("medium", "big") else None
    if loop and LOOP_RANK[loop] > LOOP_RANK.get(case.loop_level, 0):
        case.loop_level = loop
    if instance.finished:
        case.status = "false_alarm" if data.get("verdict") in ("false_alarm", "device_fault") \
            else "closed"
        case.outcome = str(data.get("verdict") or "closed")
        case.closed_at = now
        case.next_timer_at = None
    # Last: its flush writes the case row once, with everything above.
    _sync_tasks(loaded, now, data, writes)
    return completed


_EVENT_COLUMNS = ("case_id", "seq", "at", "kind", "actor_id", "actor_name", "version_hash",
                  "element_id", "element_name", "lane", "old_state", "new_state", "data",
                  "prev_hash", "hash")
_JSON_EVENTS = (f"INSERT INTO case_event ({', '.join(_EVENT_COLUMNS)}) "
                f"SELECT {', '.join(_EVENT_COLUMNS)} "
                f"FROM json_populate_recordset(NULL::case_event, %s::json)")


def _insert_events(rows: list[dict[str, Any]],
                   execute: row_batches.Execute | None = None) -> None:
    """A step's history in one statement. On PostgreSQL the rows go as one JSON array (an
    executemany runs the INSERT once per row, a few dozen times a step), each row's data as
    the text its hash was computed from; elsewhere an executemany. Going through the table
    (not the ORM) neither flushes the session first nor leaves objects behind. `execute`: how
    the PostgreSQL statement is sent (a `WriteBehind`'s), else at once."""
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(cast(Table, CaseEvent.__table__)),
                           [{c: row[c] for c in _EVENT_COLUMNS} for row in rows])
        return
    dumps = json.dumps
    parts = []
    for row in rows:
        fields = dumps({c: utc_text(row[c]) if c == "at" else row[c]
                        for c in _EVENT_COLUMNS if c != "data"}, ensure_ascii=False)
        parts.append(f'{fields[:-1]},"data":{row["data_json"]}}}')
    document = "[" + ",".join(parts) + "]"
    if execute is not None:
        execute(_JSON_EVENTS, (document,))
    else:
        connection.exec_driver_sql(_JSON_EVENTS, (document,))


def clear_stuck(case: Case, *, now: datetime) -> None:
    """The failed step ran again and went through: the case moves on."""
    if case.stuck_since is None:
        return
    add_event(case, kind="unstuck", at=now, version_hash="",
              data={"stuck_since": case.stuck_since.isoformat(),
                    "attempts": case.stuck_attempts})
    case.stuck_since, case.error, case.failure, case.stuck_attempts = None, None, None, 0


def relevel_tasks(loaded: Loaded, level: str, values: dict[str, Any]) -> None:
    """Open tasks take the new level, and a due time counted from their creation with the new
    level's limits."""
    rows = db.session.scalars(select(CaseTask).where(
        CaseTask.case_id == loaded.case.id, CaseTask.status == "ready")).all()
    for row in rows:
        facts = loaded.index.get(row.process_id, row.element_id)
        properties = dict(facts.properties) if facts is not None else {}
        row.level = level
        row.due_at = _due(values, properties, row.element_id, row.created_at)
    db.session.flush()


def _sync_tasks(loaded: Loaded, now: datetime, data: Mapping[str, Any],
                writes: Writes | None = None) -> None:
    """Make case_task match the engine's ready human tasks (`data`: the process data after
    the step; with `writes`, new rows wait in it)."""
    case, instance = loaded.case, loaded.instance
    ready = {t.task_id: t for t in instance.ready_human_tasks()}
    # Pending events do not change which tasks are stored: no flush before this read. Rows of
    # ready tasks in another status come along: a task that failed (ERROR) and ran again is
    # the same task, and its row is reopened.
    if loaded.tasks is not None:
        rows = [r for r in loaded.tasks if r.status == "ready" or r.task_id in ready]
        loaded.tasks = None  # rows this sync adds are not among them
    else:
        with db.session.no_autoflush:
            rows = list(db.session.scalars(select(CaseTask).where(
                CaseTask.case_id == case.id,
                or_(CaseTask.status == "ready", CaseTask.task_id.in_(list(ready))))).all())
    loaded.opened = []
    for row in rows:
        if row.task_id in ready:
            if row.status != "ready":
                row.status, row.completed_at, row.completed_by_id = "ready", None, None
                loaded.opened.append(row)
        elif row.status == "ready":
            # Completed by an action (set by the caller) or cancelled by an interrupting event.
            row.status = "completed" if row.completed_at else "cancelled"
            _stamp_completed(case, loaded.index, row)
    known = {r.task_id for r in rows}
    for task_id, task in ready.items():
        if task_id in known:
            continue
        lane = loaded.index.role_of(task.process_id, task.element_id) or "business_admin"
        who = assignee(case, lane, task.properties)
        role, paths = who.role, who.paths
        _stamp_created(case, loaded.index, task.process_id, task.element_id, now)
        new_row = CaseTask(
            case_id=case.id, task_id=task_id, process_id=task.process_id,
            department_id=who.department_id,
            element_id=task.element_id, name=task.name or task.element_id, role=role,
            scope_path=paths[0], scenario_path=paths[1], level=case.level,
            created_at=now, due_at=_due(data, task.properties, task.element_id, now))
        if writes is None:
            db.session.add(new_row)
        else:
            writes.tasks.append(new_row)
        loaded.opened.append(new_row)
    if writes is None:
        db.session.flush()


def chain_intact(events: Iterable[CaseEvent]) -> int | None:
    """Recompute a case's event chain; the seq of the first broken event, or None."""
    prev = "0" * 64
    for event in events:
        digest = _digest(prev, event.seq, event.kind, event.at, event.actor_name,
                         event.element_id, event.old_state, event.new_state, event.data)
        if event.prev_hash != prev or event.hash != digest:
            return event.seq
        prev = digest
    return None


def recorded_inputs(case: Case) -> list[Any]:
    """Everything that moved the case's process, in order, as the engine recorded it."""
    from workflows import input_from_dict

    rows = db.session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case.id, CaseEvent.kind == "input").order_by(CaseEvent.seq))
    return [input_from_dict(dict(row.data)) for row in rows]


def verify_replay(case: Case) -> Instance:
    """Re-run the recorded inputs against the case's own stored BPMN with the recorded
    times; raises ReplayMismatchError naming the first difference from the stored state.
    A case moved to another version replays from the version it started on, through each
    recorded migration."""
    from workflows import verify_replay as _verify

    version = db.session.get(HandbookVersion, case.handbook_version_id)
    assert version is not None
    hashes = list(dict.fromkeys(db.session.scalars(select(CaseEvent.version_hash).where(
        CaseEvent.case_id == case.id, CaseEvent.kind == "input").order_by(CaseEvent.seq))))
    # Events name versions by content hash; a recorded migration by its compiled hash.
    by_content = {version.content_hash: compiled(version)}
    for other in db.session.scalars(select(HandbookVersion).where(
            HandbookVersion.content_hash.in_([h for h in hashes if h not in by_content]))):
        by_content.setdefault(other.content_hash, compiled(other))
    first = by_content.get(hashes[0]) if hashes else None
    return _verify(runtime(), first or by_content[version.content_hash], recorded_inputs(case),
                   case.state, {v.hash: v for v in by_content.values()})
