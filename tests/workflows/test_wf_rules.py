"""The shared handbook rules: named functions of the script environment, called from a script in
one line, run in the worker under the same checks, replayable, and only from script tasks."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.workflows.bpmn_helpers import definitions, linear_process, script_process
from workflows import FixedClock, Runtime, verify_replay
from workflows.rules import duration_seconds, flatten_limits

LIMITS = {"yellow": {"accept_limit": "PT30M", "on_site_limit": "PT2H", "feedback_limit": "PT4H",
                     "close_limit": "PT24H", "escalate_after": "PT45M"},
          "red": {"accept": "PT5M", "close": "PT6H", "reminder_every": "PT2M"}}
START = {"level": "yellow", "value": 5, "limits": LIMITS, "accept_limit": "PT30M",
         "on_site_limit": None, "feedback_limit": None, "close_limit": "PT24H",
         "escalate_after": "PT45M", "reminder_cycle": "R3/PT10M", "major_risk": False}


def test_a_one_line_call_registers_grades_and_pushes(wf_runtime: Runtime,
                                                     wf_clock: FixedClock) -> None:
    version = wf_runtime.compile({"r.bpmn": script_process(
        "register_case()\ncase_updates['level'] = 'red'\ngrade_and_push()")})
    instance, result = wf_runtime.start(version, "p", dict(START))
    assert result.ok, result.failure
    data = instance.data
    assert data["case_updates"]["level"] == "red" and data["level"] == "red"
    # red's limits use the handbook's names; what red does not give keeps its value
    assert (data["accept_limit"], data["close_limit"], data["feedback_limit"]) == (
        "PT5M", "PT6H", "PT6H")
    assert data["on_site_limit"] == "PT6H" and data["reminder_cycle"] == "R3/PT2M"
    assert data["pushed_at"] == wf_clock.now().isoformat() and data["outcome"] == "open"
    assert not any(key.startswith("level_limits") or key == "rank" for key in data)


def test_schedule_accept_counts_from_the_engine_clock(wf_runtime: Runtime,
                                                     wf_clock: FixedClock) -> None:
    version = wf_runtime.compile({"s.bpmn": script_process("schedule_accept()")})
    instance, _ = wf_runtime.start(version, "p", dict(START))
    start = datetime.fromisoformat(instance.data["reminder_cycle"].split("/")[1])
    assert start - wf_clock.now() == (datetime(2000, 1, 1, 0, 30, tzinfo=UTC)
                                    - datetime(2000, 1, 1, tzinfo=UTC))
    assert instance.data["supervise_after"] == "PT4500S"  # 30 + 45 minutes


def test_a_rule_run_replays_to_the_same_state(wf_runtime: Runtime,
                                              wf_clock: FixedClock) -> None:
    files = {"r.bpmn": script_process("register_case()\ngrade_and_push()")}
    version = wf_runtime.compile(files)
    instance, result = wf_runtime.start(version, "p", dict(START))
    fresh = Runtime()
    replayed = verify_replay(fresh, fresh.compile(files), [result.input], instance.dump())
    assert replayed.data == instance.data


def test_a_rule_cannot_change_data_from_a_condition(wf_runtime: Runtime) -> None:
    body = linear_process("""
    <bpmn:exclusiveGateway id="work" default="f_no" />
    <bpmn:sequenceFlow id="f_yes" sourceRef="work" targetRef="after">
      <bpmn:conditionExpression>grade_and_push()</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="work" targetRef="after" />
    <bpmn:userTask id="after" />
    <bpmn:sequenceFlow id="f2" sourceRef="after" targetRef="end" />""")
    version = wf_runtime.compile({"c.bpmn": definitions(body)})
    _, result = wf_runtime.start(version, "p", dict(START, case_updates={}))
    assert result.failure is not None
    assert "can only be called from a script task" in result.failure.message


def test_durations_and_limit_fallbacks() -> None:
    assert duration_seconds("P1DT2H3M4S") == 93784 and duration_seconds("P1M") == 2592000
    data = {"level": "blue", "limits": {"blue": {"feedback": "PT1H"}}, "accept_limit": "PT9M",
            "close_limit": None, "feedback_limit": None, "escalate_after": "PT1M"}
    flatten_limits(data)
    assert data["feedback_limit"] == data["close_limit"] == data["on_site_limit"] == "PT1H"
    assert data["accept_limit"] == "PT9M" and data["escalate_after"] == "PT1M"
