"""History capture: every visible task state change of an engine call, as plain events.

The hooks (`hooks.py`) feed each `Task._set_state` of an engine call to a `Recorder`. Engine
bookkeeping tasks (the root `Start`, `End`, `<process>.EndJoin`, boundary-event splits and joins,
start-event splits) have no BPMN id and are left out, and so are changes between predicted states
(MAYBE, LIKELY, FUTURE), which are the engine's guesses rather than things that happened. A
completion carries the data the task changed, relative to the data it started from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

_VISIBLE = (TaskState.WAITING | TaskState.READY | TaskState.STARTED | TaskState.COMPLETED
            | TaskState.ERROR | TaskState.CANCELLED)
_NAMES = {value: name for name, value in zip(TaskState._names, TaskState._values, strict=True)}


def state_name(state: int) -> str:
    return _NAMES.get(state) or TaskState.get_name(state)


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One task state change, ready to be stored in an append-only audit table."""

    seq: int
    task_id: str
    process_id: str
    element_id: str
    element_name: str | None
    element_type: str
    lane: str | None
    old_state: str | None
    new_state: str
    at: datetime
    actor: str | None
    data_delta: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "task_id": self.task_id, "process_id": self.process_id,
            "element_id": self.element_id, "element_name": self.element_name,
            "element_type": self.element_type, "lane": self.lane,
            "old_state": self.old_state, "new_state": self.new_state,
            "at": self.at.isoformat(), "actor": self.actor, "data_delta": self.data_delta,
        }

    @classmethod
    def from_dict(cls, dct: dict[str, Any]) -> HistoryEvent:
        return cls(**{**dct, "at": datetime.fromisoformat(dct["at"])})


def data_delta(task: Task) -> dict[str, Any] | None:
    """What `task` changed relative to its parent's data: {"updated": {...}, "deleted": [...]}."""
    data = task.data
    parent = task.parent
    before: dict[str, Any] = parent.data if parent is not None else {}
    updated = {}
    for key, value in data.items():
        if key not in before or before[key] != value:
            # Copy containers: a later task in the same call may mutate them in place.
            updated[key] = copy.deepcopy(value) if isinstance(value, (list, dict)) else value
    deleted = [key for key in before if key not in data]
    if not updated and not deleted:
        return None
    return {"updated": updated, "deleted": deleted}


class Recorder:
    """Collects the visible state changes of one engine call, and tells `on_completed` about
    every task that finishes (bookkeeping ones included) with the variables it changed when
    they are known (None otherwise)."""

    __slots__ = ("at", "actor", "actor_task_id", "events", "on_completed")

    def __init__(self, at: datetime, actor: str | None = None, actor_task_id: Any = None,
                 on_completed: Callable[[Task, dict[str, Any] | None], None] | None = None):
        self.at = at
        self.actor = actor
        self.actor_task_id = actor_task_id
        self.events: list[HistoryEvent] = []
        self.on_completed = on_completed

    def on_state_change(self, task: Task, old: int, new: int) -> None:
        spec = task.task_spec
        element_id = getattr(spec, "bpmn_id", None)
        visible = element_id is not None and bool((old | new) & _VISIBLE)
        delta = data_delta(task) if visible and new == TaskState.COMPLETED else None
        if new == TaskState.COMPLETED and self.on_completed is not None:
            self.on_completed(task, (delta or {}).get("updated", {}) if visible else None)
        if not visible or element_id is None:
            return
        self.events.append(HistoryEvent(
            seq=len(self.events),
            task_id=str(task.id),
            process_id=task.workflow.spec.name,
            element_id=element_id,
            element_name=getattr(spec, "bpmn_name", None),
            element_type=spec.__class__.__name__,
            lane=getattr(spec, "lane", None),
            old_state=state_name(old) if old else None,
            new_state=state_name(new),
            at=self.at,
            actor=self.actor if task.id == self.actor_task_id else None,
            data_delta=delta,
        ))
