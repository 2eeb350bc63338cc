"""Growth limits: iterations of one element and tasks per instance."""

from __future__ import annotations

import json

from tests.workflows.bpmn_helpers import definitions, fixture_bytes, linear_process
from workflows import Limits, Runtime

LOOP = {"recheck_loop.bpmn": fixture_bytes("recheck_loop.bpmn")}


def test_bounded_loop_runs_to_the_end(wf_runtime):
    instance, result = wf_runtime.start(wf_runtime.compile(LOOP), "recheck_loop",
                                     {"rounds": 0, "target": 5})
    assert result.ok and instance.finished and instance.data["rounds"] == 5


def test_endless_gateway_loop_is_stopped_at_the_iteration_cap(wf_clock):
    wf_runtime = Runtime(clock=wf_clock, limits=Limits(max_iterations=20))
    instance, result = wf_runtime.start(wf_runtime.compile(LOOP), "recheck_loop",
                                     {"rounds": 0, "target": 10**6})
    assert result.failure is not None and result.failure.kind == "limit"
    assert result.failure.element_id == "measure"
    assert "would run for the 21th time; the limit is 20 runs" in result.failure.message
    assert [f.element_id for f in instance.errors()] == ["measure"]
    assert instance.errors()[0].kind == "limit"
    json.loads(instance.dump())
    # The cap counts across calls: after a reload the loop cannot restart from zero.
    again = wf_runtime.load(instance.version, instance.dump())
    retry = again.retry_task(result.failure.task_id)
    assert retry.failure is not None and retry.failure.kind == "limit"


def test_task_tree_cap(wf_clock):
    wf_runtime = Runtime(clock=wf_clock, limits=Limits(max_tasks=40, max_iterations=1000))
    instance, result = wf_runtime.start(wf_runtime.compile(LOOP), "recheck_loop",
                                     {"rounds": 0, "target": 10**6})
    assert result.failure is not None and result.failure.kind == "limit"
    assert "the limit is 40 (is there an endless loop?)" in result.failure.message


def test_standard_loop_with_only_a_condition_is_capped(wf_clock):
    body = linear_process("""
    <bpmn:scriptTask id="work" scriptFormat="python">
      <bpmn:standardLoopCharacteristics><bpmn:loopCondition>True</bpmn:loopCondition>
      </bpmn:standardLoopCharacteristics>
      <bpmn:script>n = n + 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""")
    wf_runtime = Runtime(clock=wf_clock, limits=Limits(max_iterations=15))
    instance, result = wf_runtime.start(wf_runtime.compile({"l.bpmn": definitions(body)}), "p",
                                     {"n": 0})
    assert result.failure is not None and result.failure.kind == "limit"
    assert "element 'work'" in result.failure.message
    assert not instance.finished
