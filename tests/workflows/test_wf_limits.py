"""Growth limits: iterations of one element and tasks per instance."""

from __future__ import annotations

import copy
import json
import random
import time

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


def _random_json(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 3 else 6)
    scalars = [0, 1, 1.0, True, False, None, "a", "b", 2.5, -0.0]
    if choice < 6:
        return rng.choice(scalars)
    if choice < 8:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice("xyz"): _random_json(rng, depth + 1) for _ in range(rng.randrange(3))}


def test_linear_merge_array_gives_the_engines_result():
    from SpiffWorkflow.util.deep_merge import DeepMerge

    from workflows.hooks import _original_merge_array, install

    install()
    rng = random.Random(20260301)
    for _ in range(3000):
        a = [_random_json(rng) for _ in range(rng.randrange(6))]
        b = [_random_json(rng) for _ in range(rng.randrange(6))]
        outcomes = []
        for merge in (_original_merge_array, DeepMerge.merge_array):
            merged = copy.deepcopy(a)
            try:
                merge(merged, copy.deepcopy(b), [])
                outcomes.append(repr(merged))
            except TypeError as exc:  # a dict merged into a scalar fails in both
                outcomes.append(f"{exc} {merged!r}")
        assert outcomes[0] == outcomes[1], (a, b)


def test_joining_branches_with_large_lists_stays_fast(wf_runtime):
    # Each branch sets a list the other one does not have: the join merges them.
    body = linear_process("""
    <bpmn:parallelGateway id="work" />
    <bpmn:sequenceFlow id="fa" sourceRef="work" targetRef="a" />
    <bpmn:sequenceFlow id="fb" sourceRef="work" targetRef="b" />
    <bpmn:scriptTask id="a" scriptFormat="python"><bpmn:script>rows = [[i] for i in range(30000)]
ids = list(range(0, 30000 * (2**61 - 1), 2**61 - 1))</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="b" scriptFormat="python">
<bpmn:script>rows = [[i + 2] for i in range(30000)]
ids = list(range(1, 30000 * (2**61 - 1), 2**61 - 1))</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="fa2" sourceRef="a" targetRef="join" />
    <bpmn:sequenceFlow id="fb2" sourceRef="b" targetRef="join" />
    <bpmn:parallelGateway id="join" />
    <bpmn:sequenceFlow id="f3" sourceRef="join" targetRef="end" />""")
    version = wf_runtime.compile({"j.bpmn": definitions(body)})
    began = time.perf_counter()
    instance, result = wf_runtime.start(version, "p", {"rows": [], "ids": []})
    assert result.ok and instance.finished
    assert time.perf_counter() - began < 3
