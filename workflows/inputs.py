"""Recorded inputs: what was done to an instance and when, enough to replay it exactly."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class _Input:
    kind: ClassVar[str] = ""
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The input as JSON-ready values. Nested values are the record's own (an input is
        copied when it is made and never changed after), not copies: an input carries the
        whole start data, and copying it again for every step was a cost of its own."""
        dct = {f.name: getattr(self, f.name) for f in fields(self)}
        dct["kind"] = self.kind
        dct["at"] = self.at.isoformat()
        return dct


@dataclass(frozen=True)
class StartInput(_Input):
    kind: ClassVar[str] = "start"
    process_id: str
    instance_id: str
    data: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None


@dataclass(frozen=True)
class CompleteTaskInput(_Input):
    kind: ClassVar[str] = "complete_task"
    task_id: str
    data: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None


@dataclass(frozen=True)
class MessageInput(_Input):
    kind: ClassVar[str] = "message"
    name: str
    payload: Any = None
    actor: str | None = None


@dataclass(frozen=True)
class SignalInput(_Input):
    kind: ClassVar[str] = "signal"
    name: str
    payload: dict[str, Any] | None = None
    actor: str | None = None


@dataclass(frozen=True)
class TimerInput(_Input):
    kind: ClassVar[str] = "timers"


@dataclass(frozen=True)
class RetryInput(_Input):
    kind: ClassVar[str] = "retry_task"
    task_id: str
    actor: str | None = None


@dataclass(frozen=True)
class DataInput(_Input):
    kind: ClassVar[str] = "update_data"
    values: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None


@dataclass(frozen=True)
class MigrationInput(_Input):
    kind: ClassVar[str] = "migrate"
    target_version: str


RecordedInput = (StartInput | CompleteTaskInput | MessageInput | SignalInput | TimerInput
                 | RetryInput | MigrationInput | DataInput)

_KINDS: dict[str, type[_Input]] = {
    cls.kind: cls for cls in (StartInput, CompleteTaskInput, MessageInput, SignalInput,
                              TimerInput, RetryInput, MigrationInput, DataInput)
}


def input_from_dict(dct: dict[str, Any]) -> RecordedInput:
    """Rebuild an input from `to_dict()` output (for example a JSON column)."""
    values = dict(dct)
    cls = _KINDS[values.pop("kind")]
    values["at"] = datetime.fromisoformat(values["at"])
    result: RecordedInput = cls(**values)  # type: ignore[assignment]
    return result
