"""The injected wf_clock and the engine hooks: per call, per thread, invisible outside calls."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import SpiffWorkflow.bpmn.specs.event_definitions.timer as spiff_timer
import SpiffWorkflow.task as spiff_task

from tests.workflows.bpmn_helpers import T0, definitions, linear_process
from workflows import FixedClock, Runtime
from workflows.hooks import TaskIdSource, engine_call, install


def test_fixed_clock_refuses_naive_and_backwards():
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 1, 1))
    wf_clock = FixedClock(T0)
    with pytest.raises(ValueError, match="backwards"):
        wf_clock.advance(minutes=-1)
    assert wf_clock.advance(minutes=90) == T0 + timedelta(minutes=90)


def test_hooks_are_transparent_outside_engine_calls():
    install()
    before = datetime.now(UTC)
    now = spiff_timer.datetime.now(UTC)
    assert before <= now <= datetime.now(UTC)
    assert abs(spiff_task.time.time() - datetime.now(UTC).timestamp()) < 5
    assert spiff_task.uuid4().version == 4


def test_engine_call_fixes_time_and_ids():
    source = TaskIdSource(uuid.UUID(int=7))
    with engine_call(T0, source):
        assert spiff_timer.datetime.now(UTC) == T0
        assert spiff_task.time.time() == T0.timestamp()
        first = spiff_task.uuid4()
    assert source.counter == 1
    assert first == uuid.uuid5(uuid.UUID(int=7), "1")


def test_threads_see_their_own_time():
    body = linear_process("""
    <bpmn:scriptTask id="work"><bpmn:script>stamp = now().isoformat()
total = 0
for i in range(2000):
    total = total + i</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""")
    wf_runtime = Runtime()
    version = wf_runtime.compile({"t.bpmn": definitions(body)})
    failures: list[str] = []

    def worker(offset: int) -> None:
        moment = T0 + timedelta(days=offset)
        for _ in range(30):
            instance, _ = wf_runtime.start(version, "p", at=moment)
            if instance.data["stamp"] != moment.isoformat():
                failures.append(f"thread {offset} saw {instance.data['stamp']}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_same_inputs_give_the_same_task_ids(wf_runtime, alert_version):
    key = uuid.uuid4()
    first, _ = wf_runtime.start(alert_version, "alert_handling", {"value": 1, "threshold": 2},
                             instance_id=key, at=T0)
    second, _ = wf_runtime.start(alert_version, "alert_handling", {"value": 1, "threshold": 2},
                              instance_id=key, at=T0)
    assert first.dump() == second.dump()
    other, _ = wf_runtime.start(alert_version, "alert_handling", {"value": 1, "threshold": 2},
                             at=T0)
    assert other.ready_human_tasks()[0].task_id != first.ready_human_tasks()[0].task_id
