"""Instance state as SpiffWorkflow's own serialization, minus the specs.

SpiffWorkflow's `BpmnWorkflowConverter` writes the whole process definition (`spec` and
`subprocess_specs`) into every saved state and parses it back on every load. Here the workflow
converter is replaced by one that writes only the instance (task tree, data, subprocesses,
pending events) and, on load, attaches the spec objects of the cached compiled version. Everything
else (tasks, subprocess workflows, events, task data deltas) uses the engine's converters
unchanged, so the inner format is the engine's ("serializer_version" is recorded alongside).
"""

from __future__ import annotations

import json
import threading
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.helpers.dictionary import DictionaryConverter
from SpiffWorkflow.bpmn.serializer.helpers.encoder import create_encoder
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as ENGINE_SERIALIZER_VERSION
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

__all__ = ["ENGINE_SERIALIZER_VERSION", "registry", "workflow_to_dict", "workflow_to_json",
           "workflow_to_text", "workflow_from_dict"]


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Top-level workflow converter that leaves the specs out and takes them back as objects."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct: dict[str, Any] = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: BpmnProcessSpec | None = None,
                  subprocess_specs: dict[str, BpmnProcessSpec] | None = None) -> BpmnWorkflow:
        if spec is None:
            raise ValueError("a spec-less state needs the spec of its version to load")
        workflow = self.target_class(spec, dict(subprocess_specs or {}), deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        # The engine pops entries from this mapping; copy it so the caller's state stays intact.
        self.subprocesses_from_dict(dict(dct["subprocesses"]), workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class _ThreadRegistry(threading.local):
    """One registry per thread: the engine's registry keeps a mode flag while encoding."""

    def __init__(self) -> None:
        config = dict(CAMUNDA_CONFIG)
        config[BpmnWorkflow] = SpeclessWorkflowConverter
        self.registry: DictionaryConverter = BpmnWorkflowSerializer.configure(config)
        self.encoder = create_encoder(self.registry)


_THREAD = _ThreadRegistry()


def registry() -> DictionaryConverter:
    """This thread's converter registry (also used to compare specs when diffing versions)."""
    return _THREAD.registry


def workflow_to_dict(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The instance as a JSON-compatible dict, without specs."""
    result: dict[str, Any] = _THREAD.registry.convert(workflow)
    return result


def workflow_to_json(envelope: dict[str, Any], workflow: BpmnWorkflow, key: str) -> bytes:
    """`envelope` with the workflow under `key`, encoded as compact UTF-8 JSON."""
    return workflow_to_text(envelope, workflow, key, ensure_ascii=False).encode("utf-8")


def workflow_to_text(envelope: dict[str, Any], workflow: BpmnWorkflow, key: str, *,
                     ensure_ascii: bool = True) -> str:
    """`envelope` with the workflow under `key` as compact JSON text; by default every
    character outside ASCII escaped, so that any text a script made (a lone surrogate
    included) goes into any store.

    Uses the engine's lazy encoder mode (conversion happens while json.dumps walks the tree),
    which is what `BpmnWorkflowSerializer.serialize_json` does and is cheaper than a full
    convert followed by dumps.
    """
    reg = _THREAD.registry
    reg._encoder_mode = True
    try:
        body = dict(envelope)
        body[key] = reg.convert(workflow)
        return json.dumps(body, cls=_THREAD.encoder, ensure_ascii=ensure_ascii,
                          separators=(",", ":"))
    finally:
        reg._encoder_mode = False


def workflow_from_dict(dct: dict[str, Any], spec: BpmnProcessSpec,
                       subprocess_specs: dict[str, BpmnProcessSpec]) -> BpmnWorkflow:
    """Rebuild the instance from `workflow_to_dict` output around the given spec objects."""
    workflow: BpmnWorkflow = _THREAD.registry.restore(
        dict(dct), spec=spec, subprocess_specs=subprocess_specs
    )
    return workflow
