"""Changing process variables from outside: running tasks read them, timers are re-armed."""

from __future__ import annotations

from datetime import timedelta

from bpmn_helpers import T0, definitions

from workflows import FixedClock, Runtime, replay

PROCESS = definitions("""
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="accept" />
    <bpmn:userTask id="accept" name="接单"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="dispose" />
    <bpmn:userTask id="dispose" name="处置"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f3" sourceRef="dispose" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:boundaryEvent id="late" attachedToRef="accept" cancelActivity="false">
      <bpmn:outgoing>g1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>accept_limit</bpmn:timeDuration>
      </bpmn:timerEventDefinition></bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="g1" sourceRef="late" targetRef="escalate" />
    <bpmn:scriptTask id="escalate"><bpmn:incoming>g1</bpmn:incoming>
      <bpmn:outgoing>g2</bpmn:outgoing><bpmn:script>escalated = True</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="g2" sourceRef="escalate" targetRef="escalated_end" />
    <bpmn:endEvent id="escalated_end"><bpmn:incoming>g2</bpmn:incoming></bpmn:endEvent>
    <bpmn:boundaryEvent id="remind" attachedToRef="accept" cancelActivity="false">
      <bpmn:outgoing>h1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeCycle>reminder_cycle</bpmn:timeCycle>
      </bpmn:timerEventDefinition></bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="h1" sourceRef="remind" targetRef="reminded" />
    <bpmn:endEvent id="reminded"><bpmn:incoming>h1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")

BLUE = {"accept_limit": "PT2H", "reminder_cycle": "R3/PT30M", "level": "blue"}
RED = {"accept_limit": "PT5M", "reminder_cycle": "R3/PT2M", "level": "red"}


def _due(instance, element_id):  # type: ignore[no-untyped-def]
    return {w.element_id: w.due for w in instance.waiting_events()}.get(element_id)


def test_a_shorter_limit_counts_from_when_the_timer_was_armed() -> None:
    clock = FixedClock(T0)
    runtime = Runtime(clock=clock)
    version = runtime.compile({"p.bpmn": PROCESS})
    instance, _ = runtime.start(version, "p", dict(BLUE))
    assert _due(instance, "late") == T0 + timedelta(hours=2)
    result = instance.update_data({"accept_limit": "PT1H"}, at=T0 + timedelta(minutes=10))
    assert result.ok
    assert _due(instance, "late") == T0 + timedelta(hours=1)
    # One blue reminder fired at T0+30min; three-times-20-minutes leaves two, at +40 and +60.
    instance.fire_timers(at=T0 + timedelta(minutes=31))
    instance.update_data({"reminder_cycle": "R3/PT20M"}, at=T0 + timedelta(minutes=32))
    assert _due(instance, "remind") == T0 + timedelta(minutes=40)
    assert [t.element_id for t in instance.ready_human_tasks()] == ["accept"]


def test_a_limit_already_past_fires_at_once_and_later_tasks_read_the_new_values() -> None:
    runtime = Runtime(clock=FixedClock(T0))
    version = runtime.compile({"p.bpmn": PROCESS})
    instance, _ = runtime.start(version, "p", dict(BLUE))
    instance.fire_timers(at=T0 + timedelta(minutes=31))  # one blue reminder fired
    at = T0 + timedelta(minutes=40)
    result = instance.update_data(RED, at=at)
    done = [e.element_id for e in result.events if e.new_state == "COMPLETED"]
    assert "escalate" in done  # armed at T0, 5 minutes: overdue since T0+5min
    # The cycle keeps its one fired occurrence: the two red ones left (T0+4, T0+6 min) are
    # past too and fire now; no third.
    assert [e.element_id for e in result.events if e.new_state == "COMPLETED"
            and e.element_id == "reminded"] == ["reminded", "reminded"]
    assert _due(instance, "remind") is None
    task = instance.ready_human_tasks()[0]
    instance.complete_task(task.task_id, {}, at=at)
    assert instance.data["level"] == "red"
    assert instance.data["accept_limit"] == "PT5M"


def test_update_data_replays_exactly() -> None:
    runtime = Runtime(clock=FixedClock(T0))
    version = runtime.compile({"p.bpmn": PROCESS})
    instance, first = runtime.start(version, "p", dict(BLUE))
    steps = [first.input,
             instance.fire_timers(at=T0 + timedelta(minutes=31)).input,
             instance.update_data(RED, at=T0 + timedelta(minutes=40)).input,
             instance.fire_timers(at=T0 + timedelta(minutes=45)).input]
    again = replay(Runtime(clock=FixedClock(T0)), runtime.compile({"p.bpmn": PROCESS}), steps)
    assert again.dump() == instance.dump()
