"""Timers with a moved clock: boundary timers, reminders, date timers, escalation across calls."""

from __future__ import annotations

from datetime import timedelta

from tests.workflows.bpmn_helpers import T0, definitions, fixture_bytes, linear_process


def started(wf_runtime, version):
    instance, _ = wf_runtime.start(version, "alert_handling", {"value": 5, "threshold": 3})
    return instance


def test_reminder_cycle_fires_twice_then_stops(wf_runtime, wf_clock, alert_version):
    instance = started(wf_runtime, alert_version)
    assert instance.next_timer_due() == T0 + timedelta(minutes=10)

    wf_clock.set(T0 + timedelta(minutes=10))
    assert [e.element_id for e in instance.fire_timers().events] == []  # due, not yet past

    wf_clock.advance(seconds=1)
    first = instance.fire_timers()
    assert [(e.element_id, e.new_state) for e in first.events if e.element_id == "remind"] == [
        ("remind", "READY"), ("remind", "COMPLETED")]
    assert instance.next_timer_due() == T0 + timedelta(minutes=20)

    wf_clock.set(T0 + timedelta(minutes=20, seconds=1))
    second = instance.fire_timers()
    assert sum(e.element_id == "end_reminded" and e.new_state == "COMPLETED"
               for e in second.events) == 1
    assert instance.next_timer_due() is None

    wf_clock.set(T0 + timedelta(hours=5))
    assert not any(e.element_id == "remind" for e in instance.fire_timers().events)
    # Non-interrupting: the task it reminds about is still there.
    assert [t.element_id for t in instance.ready_human_tasks()] == ["confirm_alert"]
    reminders = [t for t in instance.workflow.get_tasks() if t.task_spec.name == "remind"]
    assert [t.data["reminders"] for t in reminders] == [1, 1]


def test_interrupting_boundary_timer_hands_off(wf_runtime, wf_clock, alert_version):
    instance = started(wf_runtime, alert_version)
    wf_clock.advance(minutes=5)
    instance.complete_task(instance.ready_human_tasks()[0].task_id, {"confirmed": True})
    assert instance.next_timer_due() == T0 + timedelta(minutes=35)

    wf_clock.set(T0 + timedelta(minutes=35))
    instance.fire_timers()
    assert [t.element_id for t in instance.ready_human_tasks()] == ["dispatch"]

    wf_clock.advance(seconds=1)
    result = instance.fire_timers()
    changes = {(e.element_id, e.new_state) for e in result.events}
    assert {("dispatch_timeout", "COMPLETED"), ("dispatch", "CANCELLED"),
            ("escalate", "READY")} <= changes
    (escalate,) = instance.ready_human_tasks()
    assert (escalate.element_id, escalate.lane) == ("escalate", "应急管理局")


def test_completing_in_time_cancels_the_timer(wf_runtime, wf_clock, alert_version):
    instance = started(wf_runtime, alert_version)
    instance.complete_task(instance.ready_human_tasks()[0].task_id, {"confirmed": True})
    wf_clock.advance(minutes=29)
    result = instance.complete_task(instance.ready_human_tasks()[0].task_id, {"measures": "关阀"})
    assert ("dispatch_timeout", "CANCELLED") in {(e.element_id, e.new_state)
                                                 for e in result.events}
    assert instance.next_timer_due() is None
    wf_clock.advance(hours=1)
    assert [t.element_id for t in instance.ready_human_tasks()] == ["report"]
    assert instance.fire_timers().events == []


def test_timer_deadline_survives_save_and_load(wf_runtime, wf_clock, alert_version):
    instance = started(wf_runtime, alert_version)
    instance.complete_task(instance.ready_human_tasks()[0].task_id, {"confirmed": True})
    state = instance.dump()
    wf_clock.advance(minutes=31)
    loaded = wf_runtime.load(alert_version, state)
    assert loaded.next_timer_due() == T0 + timedelta(minutes=30)
    loaded.fire_timers()
    assert [t.element_id for t in loaded.ready_human_tasks()] == ["escalate"]


def test_fire_timers_at_explicit_time(wf_runtime, alert_version):
    instance = started(wf_runtime, alert_version)
    instance.fire_timers(at=T0 + timedelta(minutes=10, seconds=1))
    reminders = [t for t in instance.workflow.get_tasks() if t.task_spec.name == "remind"]
    assert len(reminders) == 1


def date_timer_process(expression: str) -> bytes:
    return definitions(linear_process(f"""
    <bpmn:intermediateCatchEvent id="work" name="到点">
      <bpmn:timerEventDefinition id="ted">
        <bpmn:timeDate>{expression}</bpmn:timeDate>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />"""))


def test_aware_date_timer(wf_runtime, wf_clock):
    version = wf_runtime.compile({"d.bpmn": date_timer_process("2026-03-01T17:00:00+08:00")})
    instance, _ = wf_runtime.start(version, "p")
    assert instance.next_timer_due() == T0 + timedelta(hours=1)  # 17:00 Shanghai = 09:00 UTC
    wf_clock.advance(minutes=59)
    instance.fire_timers()
    assert not instance.finished
    wf_clock.advance(minutes=2)
    instance.fire_timers()
    assert instance.finished


def test_timer_expression_from_data(wf_runtime, wf_clock):
    body = linear_process("""
    <bpmn:intermediateCatchEvent id="work">
      <bpmn:timerEventDefinition id="ted">
        <bpmn:timeDuration>'PT' + str(minutes) + 'M'</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""")
    version = wf_runtime.compile({"e.bpmn": definitions(body)})
    instance, _ = wf_runtime.start(version, "p", {"minutes": 45})
    assert instance.next_timer_due() == T0 + timedelta(minutes=45)


def test_naive_date_from_expression_fails_the_timer_with_a_message(wf_runtime):
    version = wf_runtime.compile({"d.bpmn": date_timer_process("when")})
    instance, result = wf_runtime.start(version, "p", {"when": "2026-03-01T17:00:00"})
    assert result.failure is not None and result.failure.element_id == "work"
    assert "has no time zone" in result.failure.message
    assert instance.next_timer_due() is None
    assert [e.element_id for e in instance.errors()] == ["work"]


def test_escalation_from_called_process_is_caught_by_caller(wf_runtime):
    version = wf_runtime.compile({"caller.bpmn": fixture_bytes("big_loop_caller.bpmn"),
                               "inspection.bpmn": fixture_bytes("big_loop_inspection.bpmn")})
    instance, _ = wf_runtime.start(version, "scenario_gas")
    (inspect,) = instance.ready_human_tasks()
    result = instance.complete_task(inspect.task_id, {"hazard": "true"}, actor="town-1")
    changes = [(e.process_id, e.element_id, e.new_state) for e in result.events]
    assert ("inspection", "throw_help", "COMPLETED") in changes
    assert ("scenario_gas", "help_caught", "COMPLETED") in changes
    assert ("scenario_gas", "end_ok", "CANCELLED") in changes
    (big_loop,) = instance.ready_human_tasks()
    assert (big_loop.element_id, big_loop.lane) == ("big_loop", "应急管理局")


def test_failed_timer_can_be_retried(wf_runtime, wf_clock):
    # At minute 0 the expression gives an unusable value; a minute later it works.
    version = wf_runtime.compile({"d.bpmn": date_timer_process(
        "'2026-03-01T17:00:00+08:00' if now().minute else 'soon'")})
    instance, result = wf_runtime.start(version, "p")
    assert result.failure is not None
    assert "'soon' is not an ISO 8601 date-time" in result.failure.message
    wf_clock.advance(minutes=1)
    assert instance.retry_task(result.failure.task_id).ok
    assert instance.errors() == []
    assert instance.next_timer_due() == T0 + timedelta(hours=1)
