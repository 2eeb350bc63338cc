"""Version diff and safe migration of running instances to another version.

`diff_versions` compares the engine specs of two versions (SpiffWorkflow's `SpecDiff` aligns
elements by id and falls back to graph position) and lists added, removed and changed elements
of a process and of the processes it calls. `check_migration` refuses a move when the target
drops something the instance has used, is doing, or may still reach, or a called process it is
running. `migrate` then switches the specs with `reset_mask=READY`: READY tasks are re-predicted
from the new definition, WAITING tasks (timers, messages) are left alone, so a timer keeps the
deadline it was given when it started.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff, diff_workflow, migrate_workflow
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.util.task import TaskState

from .errors import MigrationRefusedError, WorkflowsError
from .inputs import MigrationInput
from .limits import LimitGuard
from .runtime import Instance, Runtime, StepResult
from .serialization import registry
from .specs import CompiledVersion

_ACTIVE = TaskState.NOT_FINISHED_MASK


@dataclass(frozen=True)
class ElementChange:
    process_id: str
    element_id: str
    name: str | None
    element_type: str
    attributes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"process_id": self.process_id, "element_id": self.element_id,
                "name": self.name, "element_type": self.element_type,
                "attributes": list(self.attributes)}


@dataclass(frozen=True)
class VersionDiff:
    """What differs between two versions of a process (and the processes it calls)."""

    process_id: str
    added: list[ElementChange] = field(default_factory=list)
    removed: list[ElementChange] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)
    added_processes: list[str] = field(default_factory=list)
    removed_processes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.added_processes
                    or self.removed_processes)

    def to_dict(self) -> dict[str, Any]:
        return {"process_id": self.process_id,
                "added": [c.to_dict() for c in self.added],
                "removed": [c.to_dict() for c in self.removed],
                "changed": [c.to_dict() for c in self.changed],
                "added_processes": list(self.added_processes),
                "removed_processes": list(self.removed_processes)}


@dataclass(frozen=True)
class MigrationCheck:
    """Whether one instance can move to the target version, and why not."""

    instance_id: str
    can_migrate: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MigrationReport:
    instance_id: str
    from_version: str
    to_version: str
    diff: VersionDiff
    reset_tasks: list[str]
    kept_waiting: list[str]


def _element(process_id: str, spec: TaskSpec, attributes: list[str] | None = None
             ) -> ElementChange | None:
    element_id = getattr(spec, "bpmn_id", None)
    if element_id is None:
        return None  # engine bookkeeping, not something a designer drew
    return ElementChange(process_id, element_id, getattr(spec, "bpmn_name", None),
                         spec.__class__.__name__, tuple(attributes or ()))


def _spec_diff_report(process_id: str, diff: SpecDiff, report: VersionDiff) -> None:
    for spec in diff.added:
        if (change := _element(process_id, spec)) is not None:
            report.added.append(change)
    for spec in diff.removed:
        if (change := _element(process_id, spec)) is not None:
            report.removed.append(change)
    for spec, attributes in diff.changed.items():
        if (change := _element(process_id, spec, attributes)) is not None:
            report.changed.append(change)


def diff_versions(old: CompiledVersion, new: CompiledVersion, process_id: str) -> VersionDiff:
    """Elements added, removed and changed between two versions of `process_id`."""
    report = VersionDiff(process_id)
    old_spec, new_spec = old.spec(process_id), new.spec(process_id)
    reg = registry()
    _spec_diff_report(process_id, SpecDiff(reg, old_spec, new_spec), report)
    old_deps, new_deps = old.dependencies[process_id], new.dependencies[process_id]
    for name, spec in old_deps.items():
        if name in new_deps:
            _spec_diff_report(name, SpecDiff(reg, spec, new_deps[name]), report)
        else:
            report.removed_processes.append(name)
    report.added_processes.extend(n for n in new_deps if n not in old_deps)
    return report


def _reachable(start: list[TaskSpec]) -> set[TaskSpec]:
    seen: set[TaskSpec] = set()
    stack = list(start)
    while stack:
        spec = stack.pop()
        if spec in seen:
            continue
        seen.add(spec)
        stack.extend(spec.outputs)
    return seen


def _workflow_reasons(where: str, workflow: Any, new_spec: BpmnProcessSpec) -> list[str]:
    spec_diff = SpecDiff(registry(), workflow.spec, new_spec)
    removed = set(spec_diff.removed)
    reasons = []
    mentioned: set[str] = set()
    for task in WorkflowDiff(workflow, spec_diff).removed:
        spec = task.task_spec
        label = getattr(spec, "bpmn_id", None) or spec.name
        if label in mentioned:
            continue
        mentioned.add(label)
        if task.has_state(TaskState.FINISHED_MASK):
            status = "has already used it"
        elif task.has_state(TaskState.DEFINITE_MASK):
            status = f"is at it ({TaskState.get_name(task.state)})"
        else:
            status = "may still reach it"
        reasons.append(f"{where}: element {label!r} was removed but the instance {status}")
    active = [t.task_spec for t in workflow.get_tasks(state=_ACTIVE, skip_subprocesses=True)]
    for spec in _reachable(active) & removed:
        label = getattr(spec, "bpmn_id", None) or spec.name
        if label not in mentioned:
            mentioned.add(label)
            reasons.append(f"{where}: element {label!r} was removed but the instance may "
                           "still reach it")
    return reasons


def check_migration(instance: Instance, target: CompiledVersion) -> MigrationCheck:
    """Can `instance` move to `target`? Checks without changing anything."""
    reasons: list[str] = []
    process_id = instance.process_id
    if process_id not in target.specs:
        reasons.append(f"the target version has no process {process_id!r}")
        return MigrationCheck(str(instance.instance_id), False, reasons)
    workflow = instance.workflow
    reasons.extend(_workflow_reasons(f"process {process_id!r}", workflow,
                                     target.spec(process_id)))
    new_deps = target.dependencies[process_id]
    for subprocess in workflow.subprocesses.values():
        name = subprocess.spec.name
        if subprocess.is_completed():
            continue
        if name not in new_deps:
            reasons.append(f"called process {name!r} is running but the target version does "
                           "not call it")
            continue
        reasons.extend(_workflow_reasons(f"called process {name!r}", subprocess,
                                         new_deps[name]))
    return MigrationCheck(str(instance.instance_id), not reasons, reasons)


def migrate(instance: Instance, target: CompiledVersion, at: datetime | None = None,
            actor: str | None = None) -> tuple[MigrationReport, StepResult]:
    """Move `instance` to `target` if safe (else MigrationRefusedError), keeping timer deadlines."""
    check = check_migration(instance, target)
    if not check.can_migrate:
        raise MigrationRefusedError(check.reasons)
    source = instance.version
    diff = diff_versions(source, target, instance.process_id)
    runtime = instance.runtime
    moment = runtime.time(at)
    workflow = instance.workflow
    new_spec = target.spec(instance.process_id)
    new_deps = dict(target.dependencies[instance.process_id])
    reset = [str(t.id) for t in workflow.get_tasks(state=TaskState.READY)]
    kept = [str(t.id) for t in workflow.get_tasks(state=TaskState.WAITING)]

    def action(guard: LimitGuard) -> None:
        top_diff, sub_diffs = diff_workflow(registry(), workflow, new_spec, new_deps)
        migrate_workflow(top_diff, workflow, new_spec, reset_mask=TaskState.READY)
        for sub_id, subprocess in list(workflow.subprocesses.items()):
            sub_diff = sub_diffs.get(sub_id)
            if sub_diff is not None:
                migrate_workflow(sub_diff, subprocess, new_deps[subprocess.spec.name],
                                 reset_mask=TaskState.READY)
        workflow.subprocess_specs = new_deps
        instance.version = target
        workflow.do_engine_steps(will_complete_task=guard.before_run)

    result = runtime.run_engine(instance, moment, MigrationInput(moment, target.hash), action,
                                actor)
    report = MigrationReport(str(instance.instance_id), source.hash, target.hash, diff, reset,
                             kept)
    return report, result


def dry_run(
    runtime: Runtime,
    states: Mapping[str, Mapping[str, Any] | bytes],
    target: CompiledVersion,
    version_of: Callable[[str], CompiledVersion | None],
) -> dict[str, MigrationCheck]:
    """For each saved state (by key), could it move to `target`? `version_of(hash)` finds the
    compiled version a state belongs to."""
    results: dict[str, MigrationCheck] = {}
    for key, state in states.items():
        body = json.loads(state) if isinstance(state, bytes) else state
        version = version_of(str(body.get("version")))
        if version is None:
            results[key] = MigrationCheck(str(body.get("instance")), False,
                                          ["the instance's own version is not available"])
            continue
        try:
            instance = runtime.load(version, body)
        except WorkflowsError as exc:
            results[key] = MigrationCheck(str(body.get("instance")), False, [str(exc)])
            continue
        results[key] = check_migration(instance, target)
    return results
