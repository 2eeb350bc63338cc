"""Helpers for the handbook process tests: compiled versions, start data, a case driver."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition

from workflows import (
    CompiledVersion,
    EventNotExpectedError,
    FixedClock,
    FormField,
    HumanTask,
    Instance,
    RecordedInput,
    Runtime,
    StepResult,
    compile_version,
)
from workflows.forms import convert_value
from workflows.inputs import MessageInput

ROOT = Path(__file__).resolve().parents[2]
BPMN = ROOT / "bpmn"
HANDBOOKS = ROOT / "handbooks" / "scenarios"
T0 = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)
LEVELS = ("red", "orange", "yellow", "blue")  # most severe first
SCENARIOS = (
    "flood_typhoon", "rain_snow_ice", "industry_trade", "hazardous_chemicals", "gas", "bridge",
    "utility_tunnel", "construction_site", "water", "forest_fire", "oil_gas_pipeline", "traffic",
    "crowd", "elevator", "power_supply",
)


def shared_files() -> dict[str, bytes]:
    return {f"shared/{p.name}": p.read_bytes() for p in sorted((BPMN / "shared").glob("*.bpmn"))}


def version_files(process_id: str) -> dict[str, bytes]:
    """The files of one version: a scenario with the shared sub-processes, a shared
    sub-process on its own, or the warning publication on its own."""
    shared = BPMN / "shared" / f"{process_id}.bpmn"
    if shared.exists():
        return {f"shared/{shared.name}": shared.read_bytes()}
    own = {f"{process_id}.bpmn": (BPMN / f"{process_id}.bpmn").read_bytes()}
    return {**own, **shared_files()} if process_id.startswith("scenario_") else own


@cache
def compiled(process_id: str) -> CompiledVersion:
    return compile_version(version_files(process_id))


@cache
def handbook(code: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HANDBOOKS / f"{code}.json").read_text(encoding="utf-8"))
    return data


_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def seconds(duration: str) -> int:
    """Seconds of a whole `PnDTnHnMnS` duration."""
    match = _DURATION.fullmatch(duration)
    assert match is not None, duration
    days, hours, minutes, secs = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + secs


def iso(total: int) -> str:
    return f"PT{total}S"


def level_variables(book: Mapping[str, Any], level: str) -> dict[str, str]:
    """The level's variables as the application derives them from the handbook (the time
    limits and the ladder after a missed accept deadline), keyed by variable name."""
    limits = book["time_limits"][level]
    due = limits["close"] or limits["feedback"]
    ladder = book["escalation_ladder"].get(level, {})
    missed, overdue = ladder.get("missed_accept", []), ladder.get("overdue_not_closed", [])
    every = next((s["repeat_every"] for s in missed if s.get("repeat_every")), limits["accept"])
    track = next((s["repeat_every"] for s in overdue if s.get("repeat_every")), due)

    def after(role: str) -> str:
        delay = next((s["after"] for s in missed if role in s["to"]), "PT0S")
        return iso(max(seconds(limits["accept"]) + seconds(delay), 1))

    return {
        "accept_limit": limits["accept"], "on_site_limit": limits["on_site"] or due,
        "feedback_limit": limits["feedback"] or due, "close_limit": due,
        "reminder_cycle": f"R3/{every}", "escalate_after": after("department_head"),
        "supervise_after": after("leader_in_charge"), "tracking_cycle": f"R20/{track}",
    }


def start_data(code: str, item_code: str, level: str, at: datetime = T0) -> dict[str, Any]:
    """The process variables the application sets when it opens a case. Tracking starts when
    the case becomes overdue: `tracking_cycle` carries that start."""
    book = handbook(code)
    item = next(i for i in book["warning_items"] if i["code"] == item_code)
    levels = [lv for lv in LEVELS if any(lv in i["thresholds"] for i in book["warning_items"])]
    current = level_variables(book, level)
    overdue_at = at + timedelta(seconds=seconds(current["close_limit"]))
    every = current["tracking_cycle"].split("/")[-1]
    return {
        "case_no": "C-2026-0001", "scenario": code, "item_code": item_code,
        "item_name": item["name"], "level": level, "value": 1.0, "unit": item["unit"],
        "town": "陆家嘴", "point": "P-0001",
        "limits": {lv: level_variables(book, lv) for lv in levels}, **current,
        "tracking_cycle": f"R5/{overdue_at.isoformat()}/{every}",
    }


_SAMPLES: dict[str, tuple[Any, ...]] = {
    "date": ("2026-07-01T09:30:00+08:00", "2026-07-01"),
    "string": ("测试内容",), "long": (1,), "boolean": (True,),
}


def sample(form_field: FormField) -> Any:
    """A valid value for a field (date-times where the server accepts them, else dates)."""
    if form_field.type == "enum":
        return form_field.options[0].id
    if form_field.type == "long" and form_field.min is not None and form_field.min > 1:
        return int(form_field.min)
    for candidate in _SAMPLES[form_field.type]:
        try:
            convert_value(form_field, candidate)
            return candidate
        except ValueError:
            continue
    raise AssertionError(f"no sample value for {form_field}")


class Case:
    """Drives one instance through the real runtime with a moved clock."""

    def __init__(self, process_id: str, data: Mapping[str, Any], clock: FixedClock):
        self.clock = clock
        self.runtime = Runtime(clock=clock)
        self.version = compiled(process_id)
        self.completed: list[str] = []       # every completed element id, in order
        self.user_tasks: list[str] = []      # completed user tasks
        self.inputs: list[RecordedInput] = []  # what moved the instance, for a replay
        self.instance: Instance
        self.instance, result = self.runtime.start(self.version, process_id, data)
        self._record(result)

    def _record(self, result: StepResult) -> StepResult:
        assert result.failure is None, result.failure
        assert not self.instance.has_errors, self.instance.errors()
        self.inputs.append(result.input)
        # The application saves the state after every step and loads it for the next one.
        self.instance = self.runtime.load(self.version, self.instance.dump())
        for event in result.events:
            if event.new_state == "COMPLETED":
                self.completed.append(event.element_id)
                if event.element_type == "UserTask":
                    self.user_tasks.append(event.element_id)
        return result

    def ready(self) -> list[str]:
        return sorted(t.element_id for t in self.instance.ready_human_tasks())

    def task(self, element_id: str) -> HumanTask:
        found = [t for t in self.instance.ready_human_tasks() if t.element_id == element_id]
        assert len(found) == 1, f"{element_id} is not ready; ready: {self.ready()}"
        return found[0]

    def complete(self, element_id: str, **values: Any) -> StepResult:
        task = self.task(element_id)
        data = {f.id: sample(f) for f in task.form if f.required and not f.readonly}
        data.update(values)
        return self._record(self.instance.complete_task(task.task_id, data, actor="tester"))

    def advance(self, **delta: float) -> StepResult:
        self.clock.advance(timedelta(**delta))
        return self._record(self.instance.fire_timers())

    def message(self, name: str, payload: Mapping[str, Any]) -> StepResult:
        """Deliver a message; event sub-process starts are triggered through the engine
        directly because `Instance.send_message` only sees events already waiting."""
        try:
            return self._record(self.instance.send_message(name, dict(payload)))
        except EventNotExpectedError:
            pass
        definition = _event_subprocess_start(self.instance, name)
        moment = self.runtime.time(None)
        instance = self.instance

        def action(guard: Any) -> None:
            event = BpmnEvent(type(definition)(name), payload={
                "payload": dict(payload), "result_var": getattr(definition, "result_var", None)})
            instance.workflow.send_event(event)
            instance.workflow.do_engine_steps(will_complete_task=guard.before_run)

        record = MessageInput(moment, name, dict(payload), "tester")
        return self._record(self.runtime.run_engine(instance, moment, record, action, "tester"))

    @property
    def data(self) -> dict[str, Any]:
        return self.instance.data


def _event_subprocess_start(instance: Instance, name: str) -> MessageEventDefinition:
    workflow = instance.workflow
    for spec_name in workflow.spec.start.trigger_specs:
        for start in workflow.subprocess_specs[spec_name].bpmn_start_events:
            definition = start.event_definition
            if isinstance(definition, MessageEventDefinition) and definition.name == name:
                return definition
    raise AssertionError(f"no event sub-process starts with message {name!r}")


# -- driving scenario cases ----------------------------------------------------------------------

def applies(step: dict[str, Any], item: str, level: str) -> bool:
    return (not step.get("levels") or level in step["levels"]) and \
        (not step.get("items") or item in step["items"])


def happy_choice(code: str) -> tuple[str, str]:
    """The warning item and level under which most special steps apply."""
    book = handbook(code)
    options = [(item["code"], level) for item in book["warning_items"]
               for level in item["thresholds"] if level in book["time_limits"]]
    return max(options, key=lambda o: (sum(applies(s, *o) for s in book["special_steps"]),
                                       -LEVELS.index(o[1])))


def steps_for(code: str, item: str, level: str) -> list[str]:
    return [f"Activity_{s['id']}" for s in handbook(code)["special_steps"]
            if applies(s, item, level)]


def open_case(code: str, clock: FixedClock, item: str | None = None,
              level: str | None = None) -> Case:
    chosen_item, chosen_level = happy_choice(code)
    item, level = item or chosen_item, level or chosen_level
    case = Case(f"scenario_{code}", start_data(code, item, level, clock.now()), clock)
    assert case.ready() == ["Activity_assessment"]
    return case


def assess(case: Case, level: str, verdict: str = "confirmed") -> None:
    case.complete("Activity_assessment", verdict=verdict, level=level, major_risk=False)


VALUES = {"Activity_accept": {"accepted": True}, "Activity_dispose": {"escalate": "none"},
          "Activity_verify": {"verified": "approve"},
          "Activity_convene": {"involved_departments": "construction,fire"}}


def finish(case: Case) -> None:
    """Complete whatever is ready with the values of a smooth case until the case ends."""
    for _ in range(40):
        if case.instance.finished:
            return
        ready = case.ready()
        assert ready, "the case waits for nothing but is not finished"
        case.complete(ready[0], **VALUES.get(ready[0], {}))
    raise AssertionError("the case did not finish")


def scenario_feedback(code: str) -> list[str]:
    present = compiled(f"scenario_{code}").form_fields(f"scenario_{code}",
                                                       "Activity_scenario_feedback")
    return ["Activity_scenario_feedback"] if present else []


def upgrade_levels(code: str) -> tuple[str, str]:
    """A level to start from and a more severe one with its own limits."""
    levels = [lv for lv in LEVELS if lv in handbook(code)["time_limits"]]
    return levels[-1], levels[0]


@pytest.fixture
def case_clock() -> FixedClock:
    return FixedClock(T0)
