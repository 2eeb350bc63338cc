"""Cross-checks between a handbook's data and its BPMN, run before anything is deployed:
every user task sits in a known lane, every particular step of the handbook is drawn, and
the forms ask for what the handbook says feedback and cancellation must record."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from app.services.bpmn_index import build_index
from app.services.handbook_schema import WEATHER_WARNING_TYPES

if TYPE_CHECKING:
    from app.services.handbooks import Bundle

# Lanes a user task may sit in: the business roles, the technical roles (technical cases of
# feed outages), and the department lanes of the cross-department processes (big loop,
# warning publication).
ROLE_LANES = {"business_admin", "responder", "department_head", "leader_in_charge",
              "tech_admin", "tech_unit_head"}
DEPARTMENT_LANES = {"emergency", "city_ops", "meteorology", "departments"}
HUMAN = {"userTask", "manualTask"}


def check_bundle(bundle: Bundle, version: Any) -> list[str]:
    problems: list[str] = []
    index = build_index(bundle.files)
    file_of = _file_of_processes(bundle.files)
    for (process_id, element_id), facts in index.elements.items():
        if facts.kind in HUMAN and facts.role not in ROLE_LANES | DEPARTMENT_LANES:
            problems.append(
                f"{file_of.get(process_id, process_id)} [{element_id}]: user task "
                f"{facts.name or element_id} is not in a role lane; put it in a lane with id "
                f"Lane_<role> ({', '.join(sorted(ROLE_LANES))})")
        if facts.kind in HUMAN:
            problems += _lane_properties(file_of.get(process_id, process_id), index, facts)
    for fields in version.forms.values():
        for f in fields:
            unknown = [o.id for o in f.options if o.id not in WEATHER_WARNING_TYPES]
            if f.id == "warning_type" and unknown:
                problems.append(f"warning_type offers {', '.join(unknown)}, which are not "
                                f"weather warning types ({', '.join(WEATHER_WARNING_TYPES)})")
    data_name = f"handbooks/scenarios/{bundle.key}.json"
    if data_name not in bundle.files:
        return problems
    data = json.loads(bundle.files[data_name])
    bpmn_name = file_of.get(bundle.process_id, bundle.process_id)
    drawn = {eid for (pid, eid) in index.elements if pid == bundle.process_id}
    for step in data.get("special_steps", []):
        if f"Activity_{step['id']}" not in drawn:
            problems.append(f"{bpmn_name}: special step {step['id']} of {bundle.key}.json "
                            f"is not drawn; add a task with id Activity_{step['id']}")
    fields = _form_fields(version)
    for field in data.get("feedback_fields", []):
        if field["id"] not in fields:
            problems.append(f"{bpmn_name}: feedback field {field['id']} of {bundle.key}.json "
                            f"is on no form; add it to the feedback task's form fields")
    causes = _options(version, "cause_category")
    for cause in data.get("cancellation", {}).get("causes", []):
        if causes and cause["code"] not in causes:
            problems.append(f"{bpmn_name}: cancellation cause {cause['code']} of "
                            f"{bundle.key}.json is not a choice of the cause_category field")
    return problems


def _lane_properties(file: str, index: Any, facts: Any) -> list[str]:
    """A user task's `roles` name business roles; its `separate_from` steps exist."""
    problems = []
    where = f"{file} [{facts.element_id}]"
    roles = [r.strip() for r in facts.properties.get("roles", "").split(",") if r.strip()]
    for role in roles:
        if role not in ROLE_LANES:
            problems.append(f"{where}: roles names {role!r}; use {', '.join(sorted(ROLE_LANES))}")
    if roles and facts.role in ROLE_LANES:
        problems.append(f"{where}: roles is for department lanes; this task is in the "
                        f"{facts.role} lane")
    for earlier in facts.properties.get("separate_from", "").split(","):
        if earlier.strip() and index.get(facts.process_id, earlier.strip()) is None:
            problems.append(f"{where}: separate_from names {earlier.strip()!r}, which is not "
                            f"a step of {facts.process_id}")
    return problems


def _file_of_processes(files: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, text in files.items():
        if name.endswith(".bpmn"):
            for process_id in build_index({name: text}).elements:
                found.setdefault(process_id[0], name)
    return found


def _form_fields(version: Any) -> set[str]:
    return {f.id for fields in version.forms.values() for f in fields}


def _options(version: Any, field_id: str) -> set[str]:
    return {o.id for fields in version.forms.values() for f in fields if f.id == field_id
            for o in f.options}
