"""Compiled specs are shared read-only: what one instance does never changes another.

SpiffWorkflow wires an event sub-process into its parent's start task the first time one is
triggered (and an ad-hoc path the first time it is added). On a spec shared by many instances
that made every instance started afterwards run the event sub-process at once, and saved states
that then failed to load against a freshly compiled spec ("No input task connected").
"""

from __future__ import annotations

from tests.workflows.test_wf_event_subprocess import PROCESS
from workflows import Runtime
from workflows.specs import wiring_fingerprint


def test_triggering_an_event_subprocess_leaves_the_spec_unchanged(wf_runtime: Runtime) -> None:
    version = wf_runtime.compile({"p.bpmn": PROCESS})
    before = wiring_fingerprint(version)
    first, _ = wf_runtime.start(version, "p", {"level": "yellow"})
    assert first.send_message("level_upgrade", {"level": "red"}).ok
    assert wiring_fingerprint(version) == before


def test_instances_started_after_a_trigger_do_not_run_the_event_subprocess(
        wf_runtime: Runtime) -> None:
    version = wf_runtime.compile({"p.bpmn": PROCESS})
    fresh, _ = wf_runtime.start(version, "p", {"level": "yellow"})
    first, _ = wf_runtime.start(version, "p", {"level": "yellow"})
    first.send_message("level_upgrade", {"level": "red"})
    later, result = wf_runtime.start(version, "p", {"level": "yellow"})
    assert [e.element_id for e in result.events] == \
        [e.element_id for e in wf_runtime.start(version, "p", {"level": "yellow"})[1].events]
    assert "on_upgrade" not in {t.task_spec.name for t in later.workflow.get_tasks()}
    assert len(later.workflow.get_tasks()) == len(fresh.workflow.get_tasks())


def test_state_saved_after_a_trigger_loads_in_a_fresh_process(wf_runtime: Runtime) -> None:
    version = wf_runtime.compile({"p.bpmn": PROCESS})
    first, _ = wf_runtime.start(version, "p", {"level": "yellow"})
    first.send_message("level_upgrade", {"level": "red"})
    later, _ = wf_runtime.start(version, "p", {"level": "yellow"})
    saved = later.dump()

    restarted = Runtime(clock=wf_runtime.clock)  # a new process: specs compiled afresh
    again = restarted.load(restarted.compile({"p.bpmn": PROCESS}), saved)
    result = again.send_message("level_upgrade", {"level": "red"})
    assert result.failure is None, result.failure
    assert again.data["level"] == "red"
