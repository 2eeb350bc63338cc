"""The handbook's own rules, checked at every deploy and save and on demand, beyond what the
engine's compile checks (timers, scripts, called processes, forms): the steps the application
relies on are marked, every user task sits in a known lane and has a form, every particular
step of the handbook is drawn, the forms ask for what the handbook says feedback and
cancellation must record, and no step that running cases wait in disappears.

Every finding is a `workflows.Problem` with a stable code and parameters, pinned on the drawn
element it concerns; `problem_text` words it for the user.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app.services.bpmn_index import VersionIndex, build_index
from app.services.handbook_schema import WEATHER_WARNING_TYPES
from app.services.steps import REQUIRED
from workflows import Problem

if TYPE_CHECKING:
    from app.services.handbooks import Bundle

# Lanes a user task may sit in: the business roles, the technical roles (technical cases of
# feed outages), and the department lanes of the cross-department processes (big loop,
# warning publication).
ROLE_LANES = {"business_admin", "responder", "department_head", "leader_in_charge",
              "tech_admin", "tech_unit_head"}
DEPARTMENT_LANES = {"emergency", "city_ops", "meteorology", "departments"}
HUMAN = {"userTask", "manualTask"}


def _problem(file: str, element_id: str | None, code: str, message: str, **params: Any
             ) -> Problem:
    return Problem(file, element_id, None, message, code=code, params=params)


def check_bundle(bundle: Bundle, version: Any) -> list[Problem]:
    """The handbook's rules for `bundle` (its files) compiled as `version`."""
    index = build_index(bundle.files)
    file_of = file_of_processes(bundle.files)
    problems: list[Problem] = []
    for (process_id, element_id), facts in index.elements.items():
        if facts.kind not in HUMAN or process_id != facts.process_id:
            continue  # the copy the index keeps under an enclosing sub-process
        file = file_of.get(process_id, "")
        if facts.role not in ROLE_LANES | DEPARTMENT_LANES:
            problems.append(_problem(
                file, element_id, "task_without_lane",
                f"user task {facts.name or element_id} is not in a role lane; put it in a "
                f"lane with id Lane_<role> ({', '.join(sorted(ROLE_LANES))})",
                task=facts.name or element_id, lanes=", ".join(sorted(ROLE_LANES))))
        if facts.kind == "userTask" and not version.form_fields(process_id, element_id):
            problems.append(_problem(
                file, element_id, "task_without_form",
                f"user task {facts.name or element_id} has no form; add the fields the "
                "person fills in (Forms > Form fields)", task=facts.name or element_id))
        problems += _lane_properties(file, index, facts)
    for fields in version.forms.values():
        for f in fields:
            unknown = [o.id for o in f.options if o.id not in WEATHER_WARNING_TYPES]
            if f.id == "warning_type" and unknown:
                problems.append(_problem(
                    "", None, "warning_type_options",
                    f"warning_type offers {', '.join(unknown)}, which are not weather warning "
                    f"types ({', '.join(WEATHER_WARNING_TYPES)})",
                    unknown=", ".join(unknown), known=", ".join(WEATHER_WARNING_TYPES)))
    data_name = f"handbooks/scenarios/{bundle.key}.json"
    if data_name not in bundle.files:
        return problems
    data = json.loads(bundle.files[data_name])
    bpmn_name = file_of.get(bundle.process_id, "")
    problems += missing_steps(index, bundle.process_id, bpmn_name)
    drawn = {eid for (pid, eid) in index.elements if pid == bundle.process_id}
    for step in data.get("special_steps", []):
        if f"Activity_{step['id']}" not in drawn:
            problems.append(_problem(
                bpmn_name, None, "special_step_missing",
                f"special step {step['id']} of {bundle.key}.json is not drawn; add a task "
                f"with id Activity_{step['id']}", step=step["id"],
                name=step.get("name") or step["id"], data=f"{bundle.key}.json"))
    fields = {f.id for fields in version.forms.values() for f in fields}
    for field in data.get("feedback_fields", []):
        if field["id"] not in fields:
            problems.append(_problem(
                bpmn_name, None, "feedback_field_missing",
                f"feedback field {field['id']} of {bundle.key}.json is on no form; add it to "
                "the feedback task's form fields", field=field["id"],
                data=f"{bundle.key}.json"))
    causes = {o.id for fields in version.forms.values() for f in fields
              if f.id == "cause_category" for o in f.options}
    for cause in data.get("cancellation", {}).get("causes", []):
        if causes and cause["code"] not in causes:
            problems.append(_problem(
                bpmn_name, None, "cancellation_cause_missing",
                f"cancellation cause {cause['code']} of {bundle.key}.json is not a choice of "
                "the cause_category field", cause=cause["code"], data=f"{bundle.key}.json"))
    return problems


def reachable(index: VersionIndex, entry: str) -> list[str]:
    """`entry` and every process it calls, directly or not."""
    calls: dict[str, set[str]] = {}
    for (process_id, _), facts in index.elements.items():
        if facts.called:
            calls.setdefault(process_id, set()).add(facts.called)
    found, pending = [entry], [entry]
    while pending:
        for target in sorted(calls.get(pending.pop(), ())):
            if target not in found:
                found.append(target)
                pending.append(target)
    return found


def missing_steps(index: VersionIndex, entry: str, file: str) -> list[Problem]:
    """A problem for each required step no element reachable from `entry` is marked as."""
    processes = set(reachable(index, entry))
    marked = {facts.step for (pid, _), facts in index.elements.items()
              if pid in processes and facts.step}
    found = [_problem(file, None, "step_missing",
                     f"no step of process {entry} (or of the processes it calls) is marked "
                     f"as '{step}'; the application needs it: mark the task with the "
                     f"property step = {step} (Extensions > Properties), or put it back",
                     step=step, process_id=entry) for step in REQUIRED if step not in marked]
    return [replace(p, process=entry) for p in found]


def _lane_properties(file: str, index: VersionIndex, facts: Any) -> list[Problem]:
    """A user task's `roles` name business roles; its `separate_from` steps exist."""
    problems = []
    roles = [r.strip() for r in facts.properties.get("roles", "").split(",") if r.strip()]
    for role in roles:
        if role not in ROLE_LANES:
            problems.append(_problem(
                file, facts.element_id, "roles_unknown",
                f"roles names {role!r}; use {', '.join(sorted(ROLE_LANES))}",
                role=role, roles=", ".join(sorted(ROLE_LANES))))
    if roles and facts.role in ROLE_LANES:
        problems.append(_problem(
            file, facts.element_id, "roles_in_role_lane",
            f"roles is for department lanes; this task is in the {facts.role} lane",
            lane=facts.role))
    for earlier in facts.properties.get("separate_from", "").split(","):
        if earlier.strip() and index.get(facts.process_id, earlier.strip()) is None:
            problems.append(_problem(
                file, facts.element_id, "separate_from_unknown",
                f"separate_from names {earlier.strip()!r}, which is not a step of "
                f"{facts.process_id}", step=earlier.strip(), process_id=facts.process_id))
    return problems


def file_of_processes(files: Mapping[str, str]) -> dict[str, str]:
    """Process id -> the BPMN file that defines it."""
    found: dict[str, str] = {}
    for name, text in files.items():
        if name.endswith(".bpmn"):
            for process_id, _ in build_index({name: text}).elements:
                found.setdefault(process_id, name)
    return found
