"""Runtime API: start, inbox tasks, completion, messages, signals, save and load."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from tests.workflows.bpmn_helpers import T0, fixture_bytes
from workflows import (
    DataError,
    EventNotExpectedError,
    FormValidationError,
    StateError,
    TaskNotFoundError,
    TaskNotReadyError,
)


def start_alert(wf_runtime, version, **data):
    return wf_runtime.start(version, "alert_handling", {"value": 5, "threshold": 3, **data})


def test_start_runs_to_first_human_task(wf_runtime, alert_version):
    instance, result = start_alert(wf_runtime, alert_version)
    assert result.ok and not instance.finished
    (task,) = instance.ready_human_tasks()
    assert uuid.UUID(task.task_id)
    assert (task.element_id, task.name, task.lane, task.kind) == (
        "confirm_alert", "核实预警", "值班员", "user")
    assert task.documentation == "到现场核实燃气浓度。"
    assert [f.id for f in task.form] == ["confirmed", "severity", "note"]
    assert json.dumps(task.to_dict(), ensure_ascii=False)
    assert instance.data["level"] == "red"


def test_complete_walks_the_process_to_the_end(wf_runtime, alert_version):
    instance, _ = start_alert(wf_runtime, alert_version)
    confirm = instance.ready_human_tasks()[0]
    assert instance.complete_task(confirm.task_id, {"confirmed": True}, actor="duty-1").ok
    (dispatch,) = instance.ready_human_tasks()
    assert (dispatch.element_id, dispatch.lane) == ("dispatch", "处置部门")
    instance.complete_task(dispatch.task_id, {"measures": "关阀"}, actor="dept-7")
    (report,) = instance.ready_human_tasks()
    result = instance.complete_task(report.task_id, {"result": "已处置"}, actor="dept-7")
    assert result.ok and instance.finished
    assert instance.ready_human_tasks() == []
    assert instance.data["people"] == 2 and instance.data["result"] == "已处置"
    assert instance.next_timer_due() is None


def test_false_alarm_takes_default_flow(wf_runtime, alert_version):
    instance, _ = start_alert(wf_runtime, alert_version)
    instance.complete_task(instance.ready_human_tasks()[0].task_id, {"confirmed": "false"})
    assert instance.finished and instance.data["confirmed"] is False


def test_invalid_form_data_changes_nothing(wf_runtime, alert_version):
    instance, _ = start_alert(wf_runtime, alert_version)
    before = instance.save()
    task_id = instance.ready_human_tasks()[0].task_id
    with pytest.raises(FormValidationError) as caught:
        instance.complete_task(task_id, {"severity": "extreme", "note": "x" * 201})
    assert caught.value.errors == {"confirmed": "is required",
                                   "severity": "must be one of: low, medium, high",
                                   "note": "must have at most 200 characters"}
    assert instance.save() == before


def test_unknown_and_finished_tasks_are_refused(wf_runtime, alert_version):
    instance, _ = start_alert(wf_runtime, alert_version)
    with pytest.raises(TaskNotFoundError):
        instance.complete_task(str(uuid.uuid4()), {})
    with pytest.raises(TaskNotFoundError):
        instance.complete_task("not-a-uuid", {})
    task_id = instance.ready_human_tasks()[0].task_id
    instance.complete_task(task_id, {"confirmed": True})
    with pytest.raises(TaskNotReadyError) as caught:
        instance.complete_task(task_id, {"confirmed": True})
    assert "COMPLETED" in str(caught.value)


def test_start_data_must_be_json(wf_runtime, alert_version):
    with pytest.raises(DataError) as caught:
        start_alert(wf_runtime, alert_version, seen_at=T0)
    assert "variable 'seen_at'" in str(caught.value)


def test_state_has_no_spec_and_round_trips(wf_runtime, alert_version):
    instance, _ = start_alert(wf_runtime, alert_version)
    state = instance.save()
    assert state["version"] == alert_version.hash and state["process"] == "alert_handling"
    assert "spec" not in state["workflow"] and "subprocess_specs" not in state["workflow"]
    assert json.loads(instance.dump()) == json.loads(json.dumps(state))
    assert len(instance.dump()) < 12_000
    loaded = wf_runtime.load(alert_version, instance.dump())
    assert loaded.workflow.spec is alert_version.spec("alert_handling")
    assert loaded.save() == state
    assert loaded.ready_human_tasks() == instance.ready_human_tasks()
    assert loaded.next_timer_due() == instance.next_timer_due()


def test_instances_share_the_cached_spec(wf_runtime, alert_version):
    again = wf_runtime.compile({"alert_handling.bpmn": fixture_bytes("alert_handling.bpmn")})
    assert again is alert_version
    first, _ = start_alert(wf_runtime, alert_version)
    second, _ = start_alert(wf_runtime, again)
    assert first.workflow.spec is second.workflow.spec


def test_load_refuses_wrong_version_and_damage(wf_runtime, alert_version):
    instance, _ = start_alert(wf_runtime, alert_version)
    other = wf_runtime.compile({"a.bpmn": fixture_bytes("await_feedback.bpmn")})
    with pytest.raises(StateError, match="belongs to version"):
        wf_runtime.load(other, instance.save())
    with pytest.raises(StateError, match="not valid JSON"):
        wf_runtime.load(alert_version, b"{broken")
    with pytest.raises(StateError, match="unknown format"):
        wf_runtime.load(alert_version, {"format": "other"})
    damaged = instance.save()
    del damaged["workflow"]["tasks"]
    with pytest.raises(StateError, match="damaged"):
        wf_runtime.load(alert_version, damaged)


@pytest.fixture
def feedback_version(wf_runtime):
    return wf_runtime.compile({"await_feedback.bpmn": fixture_bytes("await_feedback.bpmn")})


def test_message_goes_to_one_instance_only(wf_runtime, feedback_version):
    instances = [wf_runtime.start(feedback_version, "await_feedback", {"n": i})[0]
                 for i in range(3)]
    result = instances[1].send_message("现场反馈", {"ok": True, "who": "街镇"}, actor="town-3")
    assert result.ok and instances[1].finished
    assert instances[1].data["feedback"] == {"ok": True, "who": "街镇"}
    assert [e.element_id for e in result.events if e.new_state == "COMPLETED"] == [
        "wait", "feedback", "end_feedback"]
    for other in (instances[0], instances[2]):
        assert not other.finished
        assert {w.kind for w in other.waiting_events()} == {"message", "signal", "timer"}


def test_unexpected_message_lists_what_is_awaited(wf_runtime, feedback_version):
    instance, _ = wf_runtime.start(feedback_version, "await_feedback")
    with pytest.raises(EventNotExpectedError) as caught:
        instance.send_message("无关消息", {})
    assert "not waiting for message '无关消息'" in str(caught.value)
    assert "message '现场反馈'" in str(caught.value) and "signal '解除预警'" in str(caught.value)


def test_message_payload_must_be_json(wf_runtime, feedback_version):
    instance, _ = wf_runtime.start(feedback_version, "await_feedback")
    with pytest.raises(DataError, match="payload"):
        instance.send_message("现场反馈", {"at": T0})


def test_signal_into_one_instance(wf_runtime, feedback_version):
    first, _ = wf_runtime.start(feedback_version, "await_feedback")
    second, _ = wf_runtime.start(feedback_version, "await_feedback")
    assert first.send_signal("解除预警", {"by": "EMA"}).ok
    assert first.finished and first.data["by"] == "EMA"
    assert not second.finished


def test_event_gateway_timer(wf_runtime, wf_clock, feedback_version):
    instance, _ = wf_runtime.start(feedback_version, "await_feedback")
    assert instance.next_timer_due() == T0 + timedelta(hours=1)
    wf_clock.advance(hours=1, seconds=1)
    result = instance.fire_timers()
    assert instance.finished
    assert "end_timeout" in [e.element_id for e in result.events]


def test_call_activity_copies_data_in_and_out(wf_runtime):
    version = wf_runtime.compile({"caller.bpmn": fixture_bytes("big_loop_caller.bpmn"),
                               "inspection.bpmn": fixture_bytes("big_loop_inspection.bpmn")})
    instance, _ = wf_runtime.start(version, "scenario_gas", {"case_no": "A-1"})
    (inspect,) = instance.ready_human_tasks()
    assert (inspect.process_id, inspect.element_id) == ("inspection", "inspect")
    instance.complete_task(inspect.task_id, {})
    assert instance.finished
    assert instance.data == {"case_no": "A-1", "hazard": False}


def test_errors_and_retry_require_error_state(wf_runtime, alert_version):
    instance, _ = start_alert(wf_runtime, alert_version)
    assert instance.errors() == [] and not instance.has_errors
    with pytest.raises(TaskNotReadyError, match="not in ERROR"):
        instance.retry_task(instance.ready_human_tasks()[0].task_id)


def throw_process(payload: str) -> bytes:
    from tests.workflows.bpmn_helpers import definitions, linear_process

    return definitions(linear_process(f"""
    <bpmn:intermediateThrowEvent id="work" name="通知大循环">
      <bpmn:messageEventDefinition id="med" messageRef="m_help" camunda:expression="{payload}" />
    </bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />"""),
        extra='<bpmn:message id="m_help" name="请求支援" />\n')


def test_uncaught_thrown_message_is_handed_to_the_caller(wf_runtime):
    version = wf_runtime.compile({"t.bpmn": throw_process("{'case': case_no, 'level': 2}")})
    instance, result = wf_runtime.start(version, "p", {"case_no": "A-7"})
    assert result.ok and instance.finished
    thrown = instance.take_thrown_events()
    assert [e.to_dict() for e in thrown] == [
        {"kind": "message", "name": "请求支援", "payload": {"case": "A-7", "level": 2}}]
    assert instance.take_thrown_events() == []


def test_message_payload_expression_is_checked_at_load():
    from tests.workflows.bpmn_helpers import messages_of

    message = messages_of({"t.bpmn": throw_process("case_no.__class__")})
    assert "message payload: attributes starting with '_'" in message


def test_the_state_as_text_is_ascii_and_loads_back(wf_runtime, alert_version):
    """The text a store receives escapes everything outside ASCII, a lone surrogate a script
    might have made included (UTF-8 cannot carry one), and loads back to the same state."""
    import json

    instance, _ = wf_runtime.start(alert_version, "alert_handling",
                                   {"value": 1, "threshold": 2, "note": "现场 a\ud800b"})
    text = instance.dump_text()
    assert text.isascii()
    assert json.loads(text) == instance.save()
    assert wf_runtime.load(alert_version, text).save() == instance.save()
