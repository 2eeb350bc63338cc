"""Exception types raised by the workflows package; the app layer maps them to user messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class WorkflowsError(Exception):
    """Base class of every error this package raises on purpose."""

    code = "workflow_error"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an uploaded process definition, and what to do about it.

    `code` and `params` identify the problem for the application, which words it for the user
    (`message` is the engine's English wording, for logs and the command line). `element_id` is
    the element the problem was found on; `element` is the drawn element to pin it to (a
    problem on a condition, timer definition, loop setting or form field is pinned on the
    shape or sequence flow that holds it, `child` keeping the inner id), `process` the process
    it belongs to and `diagram` the BPMNDiagram that draws it when a file has several.
    A problem without `element` concerns the whole file (or version, without `file`).
    """

    file: str
    element_id: str | None
    line: int | None
    message: str
    code: str = "definition"
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    severity: str = "error"
    element: str | None = None
    child: str | None = None
    process: str | None = None
    diagram: str | None = None

    def __str__(self) -> str:
        where = self.file or "<unnamed>"
        if self.line is not None:
            where += f":{self.line}"
        if self.element_id:
            where += f" [{self.element_id}]"
        return f"{where}: {self.message}"

    def __hash__(self) -> int:
        return hash((self.file, self.element_id, self.line, self.message, self.code))

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "params": dict(self.params),
            "severity": self.severity,
            "file": self.file,
            "element_id": self.element_id,
            "element": self.element,
            "child": self.child,
            "process": self.process,
            "diagram": self.diagram,
            "line": self.line,
            "message": self.message,
        }


class DefinitionError(WorkflowsError):
    """A process definition (one version: one or several BPMN files) cannot be used."""

    code = "invalid_definition"

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        summary = "; ".join(str(p) for p in self.problems[:5])
        more = len(self.problems) - 5
        if more > 0:
            summary += f"; and {more} more problem(s)"
        super().__init__(summary or "invalid process definition")


# The English wording of each field problem, for logs and for callers without translations;
# the application words the codes in the reader's language.
FIELD_PROBLEMS: dict[str, str] = {
    "required": "is required",
    "read_only": "is read-only",
    "unknown_field": "is not a field of this form",
    "not_text": "must be text",
    "not_whole_number": "must be a whole number",
    "not_yes_or_no": "must be true or false",
    "not_date_time": "must be a date and time (YYYY-MM-DDTHH:MM with a time zone)",
    "no_time_zone": "needs a time zone offset, e.g. 2026-07-26T10:00+08:00",
    "not_date": "must be a date (YYYY-MM-DD)",
    "not_an_option": "must be one of: {options}",
    "unsupported_type": "has the unsupported type {type!r}",
    "too_short": "must have at least {n} characters",
    "too_long": "must have at most {n} characters",
    "too_small": "must be at least {n}",
    "too_large": "must be at most {n}",
}


@dataclass(frozen=True)
class FieldProblem:
    """Why one submitted value is refused: a stable code (a key of FIELD_PROBLEMS) and its
    parameters. `str()` is the English wording."""

    code: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, code: str, **params: Any) -> FieldProblem:
        return cls(code, tuple(sorted(params.items())))

    def __str__(self) -> str:
        return FIELD_PROBLEMS.get(self.code, self.code).format(**dict(self.params))


class FieldValueError(ValueError):
    """A value that cannot be converted to its field's type."""

    def __init__(self, code: str, **params: Any):
        self.problem = FieldProblem.of(code, **params)
        super().__init__(str(self.problem))


class FormValidationError(WorkflowsError):
    """Submitted form data does not fit the task's form fields; errors are per field:
    `problems` by code and parameters, `errors` in English."""

    code = "invalid_form_data"

    def __init__(self, errors: Mapping[str, FieldProblem | str]):
        self.problems: dict[str, FieldProblem] = {
            k: v if isinstance(v, FieldProblem) else FieldProblem(str(v))
            for k, v in errors.items()}
        self.errors: dict[str, str] = {k: str(v) for k, v in errors.items()}
        detail = "; ".join(f"{k}: {v}" for k, v in self.errors.items())
        super().__init__(f"form data is not valid: {detail}")


class DataError(WorkflowsError):
    """Data given to or produced by a process cannot be stored as JSON (or is too large)."""

    code = "invalid_data"


class TaskNotFoundError(WorkflowsError):
    """No task with the given id exists in the instance."""

    code = "task_not_found"


class TaskNotReadyError(WorkflowsError):
    """The task exists but cannot be acted on in its current state."""

    code = "task_not_ready"


class EventNotExpectedError(WorkflowsError):
    """A message or signal was sent to an instance that is not waiting for it."""

    code = "event_not_expected"


class StateError(WorkflowsError):
    """A saved instance state cannot be loaded (wrong version, unknown format, damaged)."""

    code = "invalid_state"


class MigrationRefusedError(WorkflowsError):
    """Moving an instance to another version is not safe; `reasons` say why."""

    code = "migration_refused"

    def __init__(self, reasons: Iterable[str]):
        self.reasons: list[str] = list(reasons)
        super().__init__("migration refused: " + "; ".join(self.reasons))


class ReplayMismatchError(WorkflowsError):
    """Re-executing recorded inputs did not reproduce the recorded state."""

    code = "replay_mismatch"
