"""History capture and replay."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.workflows.bpmn_helpers import T0, fixture_bytes, script_process
from workflows import (
    HistoryEvent,
    ReplayMismatchError,
    Runtime,
    input_from_dict,
    replay,
    verify_replay,
)

BOOKKEEPING = ("Start", "End", "alert_handling.EndJoin", "confirm_alert.BoundaryEventSplit",
               "confirm_alert.BoundaryEventJoin", "dispatch.BoundaryEventSplit")


def test_events_describe_visible_changes_only(wf_runtime, alert_version):
    instance, result = wf_runtime.start(alert_version, "alert_handling",
                                     {"value": 1, "threshold": 3}, actor="intake")
    events = result.events
    assert [(e.element_id, e.old_state, e.new_state) for e in events] == [
        ("start", "FUTURE", "READY"), ("start", "READY", "COMPLETED"),
        ("classify", "FUTURE", "READY"), ("classify", "READY", "COMPLETED"),
        ("remind_timer", "MAYBE", "WAITING"), ("confirm_alert", "FUTURE", "READY"),
    ]
    assert not any(e.element_id in BOOKKEEPING for e in events)
    assert [e.seq for e in events] == list(range(len(events)))
    assert all(e.at == T0 and e.actor is None for e in events)
    classify = events[3]
    assert (classify.element_name, classify.element_type, classify.lane) == (
        "判定等级", "ScriptTask", "值班员")
    assert classify.data_delta == {"updated": {"level": "yellow", "reminders": 0}, "deleted": []}


def test_completion_event_carries_actor_and_form_delta(wf_runtime, wf_clock, alert_version):
    instance, _ = wf_runtime.start(alert_version, "alert_handling", {"value": 5, "threshold": 3})
    wf_clock.advance(minutes=3)
    task = instance.ready_human_tasks()[0]
    result = instance.complete_task(task.task_id, {"confirmed": "true", "severity": "high"},
                                    actor="duty-1")
    done = next(e for e in result.events if e.task_id == task.task_id)
    assert (done.old_state, done.new_state, done.actor) == ("READY", "COMPLETED", "duty-1")
    assert done.at == T0 + timedelta(minutes=3)
    assert done.data_delta == {"updated": {"confirmed": True, "severity": "high", "note": None},
                               "deleted": []}
    assert all(e.actor is None for e in result.events if e is not done)
    as_json = json.dumps([e.to_dict() for e in result.events], ensure_ascii=False)
    restored = [HistoryEvent.from_dict(d) for d in json.loads(as_json)]
    assert restored == result.events


def test_events_of_called_process_name_their_process(wf_runtime):
    version = wf_runtime.compile({"caller.bpmn": fixture_bytes("big_loop_caller.bpmn"),
                               "inspection.bpmn": fixture_bytes("big_loop_inspection.bpmn")})
    _, result = wf_runtime.start(version, "scenario_gas")
    assert ("inspection", "inspect", "READY") in [
        (e.process_id, e.element_id, e.new_state) for e in result.events]
    assert ("scenario_gas", "field_check", "STARTED") in [
        (e.process_id, e.element_id, e.new_state) for e in result.events]


def run_recorded_case(wf_runtime, wf_clock, version):
    """A case with timers, a completion with a form, and a hand-off; returns inputs and state."""
    inputs = []
    instance, result = wf_runtime.start(version, "alert_handling", {"value": 9, "threshold": 3},
                                     actor="intake")
    inputs.append(result.input)
    wf_clock.advance(minutes=10, seconds=5)
    inputs.append(instance.fire_timers().input)
    wf_clock.advance(minutes=2)
    task = instance.ready_human_tasks()[0]
    inputs.append(instance.complete_task(task.task_id, {"confirmed": "on", "note": "现场确认"},
                                         actor="duty-1").input)
    wf_clock.advance(minutes=31)
    inputs.append(instance.fire_timers().input)
    return inputs, instance.dump()


def test_replay_reproduces_the_recorded_state(wf_runtime, wf_clock, alert_version):
    inputs, state = run_recorded_case(wf_runtime, wf_clock, alert_version)
    stored = json.loads(json.dumps([i.to_dict() for i in inputs]))
    recorded_inputs = [input_from_dict(d) for d in stored]
    assert recorded_inputs == inputs

    fresh = Runtime()  # another process: the wall clock is irrelevant for a replay
    version = fresh.compile({"alert_handling.bpmn": fixture_bytes("alert_handling.bpmn")})
    replayed = verify_replay(fresh, version, recorded_inputs, state)
    assert replayed.dump() == state
    assert [t.element_id for t in replayed.ready_human_tasks()] == ["escalate"]


def test_replay_detects_a_changed_record(wf_runtime, wf_clock, alert_version):
    inputs, state = run_recorded_case(wf_runtime, wf_clock, alert_version)
    tampered = json.loads(state)
    first = next(iter(tampered["workflow"]["tasks"].values()))
    first["last_state_change"] += 1
    with pytest.raises(ReplayMismatchError, match="last_state_change"):
        verify_replay(wf_runtime, alert_version, inputs, tampered)


def test_replay_with_a_failure_and_a_retry(wf_runtime, wf_clock):
    # The script fails at minute 0 (division by zero) and works when retried a minute later.
    files = {"s.bpmn": script_process("x = 10 // now().minute")}
    version = wf_runtime.compile(files)
    instance, result = wf_runtime.start(version, "p")
    assert result.failure is not None and "ZeroDivisionError" in result.failure.message
    wf_clock.advance(minutes=1)
    retried = instance.retry_task(result.failure.task_id, actor="ops")
    assert retried.ok and instance.data["x"] == 10
    assert [e.actor for e in retried.events if e.element_id == "work"] == ["ops", "ops"]
    inputs = [result.input, retried.input]
    fresh = Runtime()
    replayed = verify_replay(fresh, fresh.compile(files), inputs, instance.save())
    assert replayed.data["x"] == 10


def test_replay_needs_a_start(wf_runtime, alert_version):
    from workflows import StateError, TimerInput

    with pytest.raises(StateError, match="must begin with the start input"):
        replay(wf_runtime, alert_version, [TimerInput(T0)])


def test_a_state_holding_a_lone_surrogate_replays(wf_runtime, alert_version):
    """Text a script or a source left unpaired is data like any other: the replay compares
    it instead of failing to encode it."""
    instance, result = wf_runtime.start(alert_version, "alert_handling",
                                        {"value": 1, "threshold": 2, "note": "a\ud800"})
    replayed = verify_replay(wf_runtime, alert_version, [result.input], instance.save())
    assert replayed.save() == instance.save()
