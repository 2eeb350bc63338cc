"""Caps on instance growth: tasks per instance and iterations of one element.

Per-step cost grows with the task tree, and a loop through a gateway (or a standard loop with only
a condition) can run forever inside one engine call. `LimitGuard.before_run` is called before
every task runs (engine steps and human completions); when a cap would be exceeded it marks the
task ERROR and raises `LimitExceeded`, which stops the call between two tasks with the instance
in a consistent, saveable state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .errors import WorkflowsError


@dataclass(frozen=True)
class Limits:
    """Growth caps for one instance."""

    max_tasks: int = 5_000
    max_iterations: int = 200


class LimitExceeded(WorkflowsError):
    code = "limit_exceeded"

    def __init__(self, message: str, task: Task):
        super().__init__(message)
        self.task = task


def task_count(workflow: BpmnWorkflow) -> int:
    """Tasks in the instance, including those of called processes."""
    return len(workflow.tasks) + sum(len(sp.tasks) for sp in workflow.subprocesses.values())


class LimitGuard:
    """Counts completions per element lazily (once per call) and checks the caps."""

    __slots__ = ("workflow", "limits", "_runs")

    def __init__(self, workflow: BpmnWorkflow, limits: Limits):
        self.workflow = workflow
        self.limits = limits
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

    @staticmethod
    def _stop(task: Task, message: str) -> None:
        task.error()
        raise LimitExceeded(message, task)
