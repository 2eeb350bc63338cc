"""A message can start a non-interrupting event sub-process of one instance."""

from __future__ import annotations

import pytest
from bpmn_helpers import definitions

from workflows import EventNotExpectedError, Runtime

PROCESS = definitions("""
  <bpmn:message id="Msg_upgrade" name="level_upgrade" />
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:userTask id="work" name="处置"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:subProcess id="on_upgrade" triggeredByEvent="true">
      <bpmn:startEvent id="upgrade_start" isInterrupting="false">
        <bpmn:outgoing>g1</bpmn:outgoing>
        <bpmn:messageEventDefinition messageRef="Msg_upgrade" />
      </bpmn:startEvent>
      <bpmn:sequenceFlow id="g1" sourceRef="upgrade_start" targetRef="apply" />
      <bpmn:scriptTask id="apply" name="升级"><bpmn:incoming>g1</bpmn:incoming>
        <bpmn:outgoing>g2</bpmn:outgoing>
        <bpmn:script>level = upgrade_start_Response["level"]</bpmn:script></bpmn:scriptTask>
      <bpmn:sequenceFlow id="g2" sourceRef="apply" targetRef="upgrade_end" />
      <bpmn:endEvent id="upgrade_end"><bpmn:incoming>g2</bpmn:incoming></bpmn:endEvent>
    </bpmn:subProcess>
  </bpmn:process>""")


def test_message_starts_event_subprocess_and_main_path_goes_on(wf_runtime: Runtime) -> None:
    version = wf_runtime.compile({"p.bpmn": PROCESS})
    instance, _ = wf_runtime.start(version, "p", {"level": "yellow"})
    result = instance.send_message("level_upgrade", {"level": "red"})
    assert result.ok
    done = [e.element_id for e in result.events if e.new_state == "COMPLETED"]
    assert "apply" in done
    assert [t.element_id for t in instance.ready_human_tasks()] == ["work"]
    with pytest.raises(EventNotExpectedError):
        instance.send_message("no_such_message", {})
