"""Overhead of the workflows layer over raw SpiffWorkflow for one task completion step.

Run from the repository root: python benchmarks/engine_overhead.py

A step is what the service does per completion: load the saved state, complete a human task
with form data, run the engine steps, read the inbox projection (ready human tasks) and the next
timer due time, and save the state again. "raw" does it with SpiffWorkflow alone (the spec kept
out of the state through the engine's own converter extension point, like the workflows layer,
so both load the same amount of data); "workflows" does it through this package (history
capture, form validation, restricted scripts, limits, injected clock). Both run in one process,
interleaved, and the ratio of median step costs is printed. Target: <= 1.2.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from SpiffWorkflow.bpmn import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine  # noqa: E402
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter  # noqa: E402
from SpiffWorkflow.bpmn.serializer.helpers.encoder import create_encoder  # noqa: E402
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser  # noqa: E402
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402

from workflows import FixedClock, Runtime  # noqa: E402

NS = ('xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
      'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"')
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def form(*fields: str) -> str:
    return ("<bpmn:extensionElements><camunda:formData>" + "".join(fields)
            + "</camunda:formData></bpmn:extensionElements>")


def alert_bpmn(timer: str) -> bytes:
    """A handbook-like alert process: script, three user tasks with forms, a gateway, timers."""
    required = '<camunda:validation><camunda:constraint name="required" /></camunda:validation>'
    confirm_form = form(
        f'<camunda:formField id="confirmed" label="是否属实" type="boolean">{required}'
        "</camunda:formField>",
        '<camunda:formField id="severity" label="严重程度" type="enum" defaultValue="medium">'
        '<camunda:value id="low" name="低" /><camunda:value id="medium" name="中" />'
        '<camunda:value id="high" name="高" /></camunda:formField>',
        '<camunda:formField id="note" label="说明" type="string" />')
    dispatch_form = form(
        f'<camunda:formField id="measures" label="处置措施" type="string">{required}'
        "</camunda:formField>",
        '<camunda:formField id="people" label="出动人数" type="long" defaultValue="2" />')
    report_form = form(f'<camunda:formField id="result" label="处置结果" type="string">{required}'
                       "</camunda:formField>")
    lanes = {"值班员": ["start", "classify", "confirm_alert", "gw", "remind_timer", "remind",
                     "end_reminded", "end_false"],
             "处置部门": ["dispatch", "timeout", "report", "end_done"],
             "应急管理局": ["escalate", "end_escalated"]}
    lane_xml = "".join(
        f'<bpmn:lane id="lane{i}" name="{name}">'
        + "".join(f"<bpmn:flowNodeRef>{n}</bpmn:flowNodeRef>" for n in nodes) + "</bpmn:lane>"
        for i, (name, nodes) in enumerate(lanes.items()))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="http://bpmn.io/schema/bpmn">
<bpmn:process id="alert" name="燃气泄漏预警处置" isExecutable="true">
<bpmn:laneSet id="ls">{lane_xml}</bpmn:laneSet>
<bpmn:startEvent id="start" />
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="classify" />
<bpmn:scriptTask id="classify" name="判定等级" scriptFormat="python"><bpmn:script>
level = 'red' if value &gt;= threshold else 'yellow'
reminders = 0</bpmn:script></bpmn:scriptTask>
<bpmn:sequenceFlow id="f2" sourceRef="classify" targetRef="confirm_alert" />
<bpmn:userTask id="confirm_alert" name="核实预警">{confirm_form}</bpmn:userTask>
<bpmn:boundaryEvent id="remind_timer" cancelActivity="false" attachedToRef="confirm_alert">
<bpmn:timerEventDefinition><bpmn:timeCycle>{timer('R2/PT10M')}</bpmn:timeCycle>
</bpmn:timerEventDefinition></bpmn:boundaryEvent>
<bpmn:sequenceFlow id="f3" sourceRef="remind_timer" targetRef="remind" />
<bpmn:scriptTask id="remind" name="提醒"><bpmn:script>reminders = reminders + 1</bpmn:script>
</bpmn:scriptTask>
<bpmn:sequenceFlow id="f4" sourceRef="remind" targetRef="end_reminded" />
<bpmn:endEvent id="end_reminded" />
<bpmn:sequenceFlow id="f5" sourceRef="confirm_alert" targetRef="gw" />
<bpmn:exclusiveGateway id="gw" name="属实?" default="f_false" />
<bpmn:sequenceFlow id="f_true" sourceRef="gw" targetRef="dispatch">
<bpmn:conditionExpression>confirmed == True</bpmn:conditionExpression></bpmn:sequenceFlow>
<bpmn:sequenceFlow id="f_false" sourceRef="gw" targetRef="end_false" />
<bpmn:endEvent id="end_false" />
<bpmn:userTask id="dispatch" name="派单处置">{dispatch_form}</bpmn:userTask>
<bpmn:boundaryEvent id="timeout" attachedToRef="dispatch">
<bpmn:timerEventDefinition><bpmn:timeDuration>{timer('PT30M')}</bpmn:timeDuration>
</bpmn:timerEventDefinition></bpmn:boundaryEvent>
<bpmn:sequenceFlow id="f6" sourceRef="timeout" targetRef="escalate" />
<bpmn:userTask id="escalate" name="升级处置" />
<bpmn:sequenceFlow id="f7" sourceRef="escalate" targetRef="end_escalated" />
<bpmn:endEvent id="end_escalated" />
<bpmn:sequenceFlow id="f8" sourceRef="dispatch" targetRef="report" />
<bpmn:userTask id="report" name="反馈结果">{report_form}</bpmn:userTask>
<bpmn:sequenceFlow id="f9" sourceRef="report" targetRef="end_done" />
<bpmn:endEvent id="end_done" />
</bpmn:process></bpmn:definitions>""".encode()


def chain_bpmn(size: int) -> bytes:
    """A straight line of `size` user tasks, each with a one-field form."""
    parts = ['<bpmn:startEvent id="start" />']
    previous = "start"
    for n in range(size):
        field = f'<camunda:formField id="v{n}" label="值{n}" type="string" />'
        parts.append(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{previous}" targetRef="t{n}" />'
                     f'<bpmn:userTask id="t{n}" name="任务{n}">{form(field)}</bpmn:userTask>')
        previous = f"t{n}"
    parts.append(f'<bpmn:sequenceFlow id="fend" sourceRef="{previous}" targetRef="end" />'
                 '<bpmn:endEvent id="end" />')
    return (f'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions {NS} id="d" '
            'targetNamespace="x"><bpmn:process id="chain" isExecutable="true">'
            + "".join(parts) + "</bpmn:process></bpmn:definitions>").encode()


# -- raw SpiffWorkflow ------------------------------------------------------------------------


class RawSpeclessConverter(BpmnWorkflowConverter):
    """Keep specs out of the state, as any integrator storing specs once would."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: Any = None,
                  subprocess_specs: Any = None) -> BpmnWorkflow:
        workflow = self.target_class(spec, dict(subprocess_specs), deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dict(dct["subprocesses"]), workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class RawEngine:
    def __init__(self, bpmn: bytes, process_id: str):
        parser = CamundaParser()
        parser.add_bpmn_str(bpmn, "bench.bpmn")
        self.spec = parser.get_spec(process_id)
        self.deps = parser.get_subprocess_specs(process_id)
        config = dict(CAMUNDA_CONFIG)
        config[BpmnWorkflow] = RawSpeclessConverter
        self.registry = BpmnWorkflowSerializer.configure(config)
        self.encoder = create_encoder(self.registry)
        self.full = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
        self.script_engine = PythonScriptEngine()

    def dump(self, workflow: BpmnWorkflow) -> bytes:
        self.registry._encoder_mode = True
        try:
            text = json.dumps(self.registry.convert(workflow), cls=self.encoder,
                              ensure_ascii=False, separators=(",", ":"))
        finally:
            self.registry._encoder_mode = False
        return text.encode()

    def start(self, data: dict[str, Any]) -> bytes:
        workflow = BpmnWorkflow(self.spec, dict(self.deps), script_engine=self.script_engine)
        workflow.task_tree.data.update(data)
        workflow.do_engine_steps()
        self.projection(workflow)
        return self.dump(workflow)

    def projection(self, workflow: BpmnWorkflow) -> Any:
        inbox = [(str(t.id), t.task_spec.bpmn_id, t.task_spec.lane)
                 for t in workflow.get_tasks(state=TaskState.READY, manual=True)]
        timers = [e.value for e in workflow.waiting_events() if e.value]
        return inbox, timers

    def step(self, state: bytes, task_id: str, data: dict[str, Any]) -> bytes:
        workflow = self.registry.restore(json.loads(state), spec=self.spec,
                                         subprocess_specs=self.deps)
        workflow.script_engine = self.script_engine
        task = workflow.get_task_from_id(UUID(task_id))
        task.data.update(data)
        task.run()
        workflow.do_engine_steps()
        self.projection(workflow)
        return self.dump(workflow)

    def next_task(self, state: bytes) -> str:
        workflow = self.registry.restore(json.loads(state), spec=self.spec,
                                         subprocess_specs=self.deps)
        return str(workflow.get_next_task(state=TaskState.READY, manual=True).id)

    def full_state_size(self, state: bytes) -> int:
        workflow = self.registry.restore(json.loads(state), spec=self.spec,
                                         subprocess_specs=self.deps)
        return len(self.full.serialize_json(workflow))


# -- the workflows layer ----------------------------------------------------------------------


class Wrapped:
    def __init__(self, bpmn: bytes, process_id: str):
        self.clock = FixedClock(START)
        self.runtime = Runtime(clock=self.clock)
        self.version = self.runtime.compile({"bench.bpmn": bpmn})
        self.process_id = process_id

    def start(self, data: dict[str, Any]) -> bytes:
        instance, _ = self.runtime.start(self.version, self.process_id, data)
        instance.ready_human_tasks()
        instance.next_timer_due()
        return instance.dump()

    def step(self, state: bytes, task_id: str, data: dict[str, Any]) -> bytes:
        instance = self.runtime.load(self.version, state)
        result = instance.complete_task(task_id, data, actor="bench")
        assert result.ok
        [e.to_dict() for e in result.events]
        instance.ready_human_tasks()
        instance.next_timer_due()
        return instance.dump()

    def next_task(self, state: bytes) -> str:
        return self.runtime.load(self.version, state).ready_human_tasks()[0].task_id


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = func()
    return time.perf_counter() - began, value


def run_case(engine: Any, start_data: dict[str, Any], forms: list[dict[str, Any]],
             steps: list[float], starts: list[float]) -> None:
    took, state = timed(lambda: engine.start(start_data))
    starts.append(took)
    for data in forms:
        task_id = engine.next_task(state)
        took, state = timed(lambda s=state, t=task_id, d=data: engine.step(s, t, d))
        steps.append(took)


def compare(raw: RawEngine, wrapped: Wrapped, start_data: dict[str, Any],
            forms: list[dict[str, Any]], repetitions: int) -> dict[str, float]:
    raw_steps: list[float] = []
    our_steps: list[float] = []
    raw_starts: list[float] = []
    our_starts: list[float] = []
    for n in range(repetitions + 3):
        warm = n < 3
        pairs = [(raw, raw_steps, raw_starts), (wrapped, our_steps, our_starts)]
        if n % 2:
            pairs.reverse()  # interleave, alternating who goes first
        for engine, steps, starts in pairs:
            if warm:
                run_case(engine, start_data, forms, [], [])
            else:
                run_case(engine, start_data, forms, steps, starts)
    return {
        "raw_step": statistics.median(raw_steps), "our_step": statistics.median(our_steps),
        "raw_start": statistics.median(raw_starts), "our_start": statistics.median(our_starts),
    }


def main() -> None:
    gc.collect()
    began = time.perf_counter()
    raw = RawEngine(alert_bpmn(lambda v: repr(v)), "alert")
    wrapped = Wrapped(alert_bpmn(lambda v: v), "alert")
    forms = [{"confirmed": True, "severity": "high", "note": "现场确认"},
             {"measures": "关阀疏散", "people": 4}, {"result": "已处置"}]
    result = compare(raw, wrapped, {"value": 5, "threshold": 3}, forms, repetitions=200)
    state = wrapped.start({"value": 5, "threshold": 3})
    print("alert handling process (3 user tasks with forms, gateway, boundary timers)")
    ratio = result["our_step"] / result["raw_step"]
    print(f"  per step   raw {result['raw_step'] * 1000:7.3f} ms   workflows "
          f"{result['our_step'] * 1000:7.3f} ms   ratio {ratio:.2f}   (target <= 1.2)")
    print(f"  new case   raw {result['raw_start'] * 1000:7.3f} ms   workflows "
          f"{result['our_start'] * 1000:7.3f} ms   ratio "
          f"{result['our_start'] / result['raw_start']:.2f}")
    raw_state = raw.start({"value": 5, "threshold": 3})
    print(f"  state size {len(state)} bytes without spec (engine's default with spec: "
          f"{raw.full_state_size(raw_state)} bytes)")
    print("generated chains of user tasks (per completion step)")
    for size in (10, 50, 200):
        chain = chain_bpmn(size)
        reps = {10: 60, 50: 30, 200: 12}[size]
        steps = [{f"v{n}": "ok"} for n in range(5)]
        numbers = compare(RawEngine(chain, "chain"), Wrapped(chain, "chain"), {}, steps, reps)
        print(f"  {size:4d} tasks  raw {numbers['raw_step'] * 1000:7.3f} ms   workflows "
              f"{numbers['our_step'] * 1000:7.3f} ms   ratio "
              f"{numbers['our_step'] / numbers['raw_step']:.2f}")
    print(f"total benchmark time {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
