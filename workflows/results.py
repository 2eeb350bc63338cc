"""Plain result objects the runtime hands to the app layer (all JSON-serialisable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .forms import FormField
from .history import HistoryEvent
from .inputs import RecordedInput


@dataclass(frozen=True)
class HumanTask:
    """A READY user or manual task, as an inbox needs it."""

    task_id: str
    process_id: str
    element_id: str
    name: str | None
    lane: str | None
    kind: str
    documentation: str | None
    form: tuple[FormField, ...]
    properties: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id, "process_id": self.process_id,
            "element_id": self.element_id, "name": self.name, "lane": self.lane,
            "kind": self.kind, "documentation": self.documentation,
            "form": [f.to_dict() for f in self.form], "properties": dict(self.properties),
        }


@dataclass(frozen=True)
class TaskFailure:
    """Why a task is in ERROR; `kind` is 'script', 'limit', 'timeout' (stopped by a time
    budget: retrying may succeed) or 'engine'."""

    task_id: str
    process_id: str
    element_id: str | None
    name: str | None
    kind: str
    message: str
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StepResult:
    """What one call did: events to persist, the input to record, and a failure if any."""

    events: list[HistoryEvent]
    input: RecordedInput
    failure: TaskFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events], "input": self.input.to_dict(),
                "failure": self.failure.to_dict() if self.failure else None}


@dataclass(frozen=True)
class WaitingEvent:
    """A message, signal or timer the instance waits for; `kind` is 'message', 'signal',
    'timer', 'escalation', 'error' or 'condition'."""

    task_id: str
    element_id: str | None
    kind: str
    name: str | None
    due: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "element_id": self.element_id, "kind": self.kind,
                "name": self.name, "due": self.due.isoformat() if self.due else None}


@dataclass(frozen=True)
class ThrownEvent:
    """A message, signal or escalation the instance threw that nothing inside it caught."""

    kind: str
    name: str | None
    payload: Any

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "payload": self.payload}
