"""Caps on instance growth: tasks, iterations of one element, kept task data, time per call.

Per-step cost grows with the task tree, and a loop through a gateway (or a standard loop with only
a condition) can run forever inside one engine call. `LimitGuard.before_run` is called before
every task runs (engine steps and human completions); when a cap would be exceeded it marks the
task ERROR and raises `LimitExceeded`, which stops the call between two tasks with the instance
in a consistent, saveable state.

Kept task data is what a saved state carries: for every finished task, the variables it changed
(the engine stores a delta against the task before it). Measuring that exactly on every step
would cost as much as saving, so the guard keeps a running figure (the exact one from the state
it was loaded from, plus what every task finished since changed) and computes the exact figure
from the task tree only when the running one passes the cap. The verdict is the exact figure's,
so it depends on the instance, not on how often it was saved and loaded: a replay reaches it too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from .errors import WorkflowsError
from .sandbox import encode


@dataclass(frozen=True)
class Limits:
    """Growth caps for one instance: `max_tasks` tasks, `max_iterations` runs of one element,
    `max_state_bytes` bytes of kept task data (JSON), and `max_call_seconds` of wall-clock time
    for one call (checked before each task runs: a loop whose every step stays within its own
    budget still ends)."""

    max_tasks: int = 5_000
    max_iterations: int = 200
    max_state_bytes: int = 16 * 1024 * 1024
    max_call_seconds: float = 10.0


class LimitExceeded(WorkflowsError):
    code = "limit_exceeded"

    def __init__(self, message: str, task: Task, kind: str = "limit"):
        super().__init__(message)
        self.task = task
        self.kind = kind  # "timeout" when the limit is one of time


def task_count(workflow: BpmnWorkflow) -> int:
    """Tasks in the instance, including those of called processes."""
    return len(workflow.tasks) + sum(len(sp.tasks) for sp in workflow.subprocesses.values())


def _json_size(value: Any) -> int:
    return len(encode(value))


def saved_data_bytes(workflow_state: Mapping[str, Any]) -> int:
    """Kept task data of a saved workflow (`Instance.save()["workflow"]`), in JSON bytes."""
    total = 0
    pending = [workflow_state]
    while pending:
        current = pending.pop()
        for task in current.get("tasks", {}).values():
            if task.get("state") != TaskState.COMPLETED:
                continue
            kept = task.get("data") if task.get("parent") is None else \
                (task.get("delta") or {}).get("updates")
            if kept:
                total += _json_size(kept)
        pending.extend(current.get("subprocesses", {}).values())
    return total


def _all_tasks(workflow: BpmnWorkflow) -> Iterator[Task]:
    for current in (workflow, *workflow.subprocesses.values()):
        yield from current.tasks.values()


def _kept(task: Task) -> dict[str, Any]:
    if task.parent is None:
        return dict(task.data)
    kept: dict[str, Any] = DeepMerge.get_updated_keys(task.parent.data, task.data)
    return kept


def kept_data_bytes(workflow: BpmnWorkflow) -> int:
    """Kept task data of a running instance, exactly as a save would store it."""
    total = 0
    for task in _all_tasks(workflow):
        if task._state == TaskState.COMPLETED:
            kept = _kept(task)
            if kept:
                total += _json_size(kept)
    return total


def _largest_variable(workflow: BpmnWorkflow) -> tuple[str, str | None, int]:
    largest: tuple[str, str | None, int] = ("", None, -1)
    for task in _all_tasks(workflow):
        if task._state != TaskState.COMPLETED:
            continue
        for name, value in _kept(task).items():
            size = _json_size(value)
            if size > largest[2]:
                largest = (name, getattr(task.task_spec, "bpmn_id", None), size)
    return largest


class DataMeter:
    """A running estimate of an instance's kept task data, in JSON bytes (see the module doc).

    Each finished task adds what it changed (`kept`, measured when it finished), which is
    what a save stores for it unless nested values shared between tasks change later; the
    exact figure, taken from the task tree once the estimate passes the cap, decides.
    """

    __slots__ = ("bound",)

    def __init__(self, bound: int = 0):
        self.bound = bound

    def on_completed(self, task: Task, kept: dict[str, Any] | None) -> None:
        if kept is None:
            kept = _kept(task)
        if kept:
            self.bound += _json_size(kept)


class LimitGuard:
    """Counts completions per element lazily (once per call) and checks the caps."""

    __slots__ = ("workflow", "limits", "meter", "started", "_runs")

    def __init__(self, workflow: BpmnWorkflow, limits: Limits, meter: DataMeter | None = None):
        self.workflow = workflow
        self.limits = limits
        self.meter = meter or DataMeter()
        self.started = time.monotonic()
        self._runs: Counter[TaskSpec] | None = None

    def _counts(self) -> Counter[TaskSpec]:
        if self._runs is None:
            # Plain dict walks: much cheaper than the engine's tree iterator, order irrelevant.
            runs: Counter[TaskSpec] = Counter()
            completed = TaskState.COMPLETED
            for workflow in (self.workflow, *self.workflow.subprocesses.values()):
                for task in workflow.tasks.values():
                    if task._state == completed and getattr(task.task_spec, "bpmn_id", None):
                        runs[task.task_spec] += 1
            self._runs = runs
        return self._runs

    def before_run(self, task: Task) -> None:
        size = task_count(self.workflow)
        if size > self.limits.max_tasks:
            self._stop(task, f"the instance has {size} tasks; the limit is "
                             f"{self.limits.max_tasks} (is there an endless loop?)")
        elapsed = time.monotonic() - self.started
        if elapsed > self.limits.max_call_seconds:
            self._stop(task, f"this step has run for {elapsed:.1f} s; the limit is "
                             f"{self.limits.max_call_seconds:g} s for one step (is a loop doing "
                             "slow work?)", kind="timeout")
        if self.meter.bound > self.limits.max_state_bytes:
            self._check_data(task)
        spec = task.task_spec
        if getattr(spec, "bpmn_id", None) is None:
            return
        counts = self._counts()
        runs = counts[spec] + 1
        if runs > self.limits.max_iterations:
            self._stop(task, f"element {spec.bpmn_id!r} would run for the {runs}th time; the "
                             f"limit is {self.limits.max_iterations} runs per instance (is there "
                             "an endless loop?)")
        counts[spec] = runs

    def _check_data(self, task: Task) -> None:
        kept = kept_data_bytes(self.workflow)
        self.meter.bound = kept
        if kept > self.limits.max_state_bytes:
            name, element, size = _largest_variable(self.workflow)
            self._stop(task, f"the instance keeps {kept} bytes of task data; the limit is "
                             f"{self.limits.max_state_bytes}; the largest is variable '{name}' "
                             f"set by {element!r} ({size} bytes)")

    @staticmethod
    def _stop(task: Task, message: str, kind: str = "limit") -> None:
        task.error()
        raise LimitExceeded(message, task, kind)
