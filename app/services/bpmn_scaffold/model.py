"""Plain description of a handbook process: lanes, nodes on a grid, flows, forms and events.

Builders describe *what* a process holds and *where* each node sits on a coarse grid (lane, column,
row); `layout` turns the grid into diagram coordinates and `writer` into BPMN 2.0 XML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NodeKind = Literal[
    "startEvent", "endEvent", "userTask", "scriptTask", "callActivity", "exclusiveGateway",
    "parallelGateway", "inclusiveGateway", "boundaryEvent", "subProcess",
]
EventKind = Literal["timer", "message", "escalation", "terminate"]
TimerKind = Literal["timeDate", "timeDuration", "timeCycle"]
FieldType = Literal["string", "long", "boolean", "date", "enum"]
Route = Literal["auto", "down", "up", "over", "under", "enter_top", "enter_bottom"]


@dataclass(frozen=True)
class FormField:
    """One `camunda:formField`; `widget` becomes its `widget` property (textarea/file/datetime)."""

    id: str
    label: str
    type: FieldType = "string"
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()
    min: int | None = None
    max: int | None = None
    maxlength: int | None = None
    widget: str | None = None
    default: str | None = None
    properties: tuple[tuple[str, str], ...] = ()  # further `camunda:property`s after widget


@dataclass(frozen=True)
class EventDefinition:
    kind: EventKind
    ref: str | None = None              # message / escalation id
    timer: TimerKind | None = None
    value: str | None = None            # timer text (ISO 8601 literal or Python expression)
    result_variable: str | None = None  # message payload variable (camunda:resultVariable)


@dataclass
class Node:
    id: str
    kind: NodeKind
    name: str
    lane: str | None
    col: float
    row: float = 0.0
    documentation: str | None = None
    script: str | None = None
    called: str | None = None
    fields: tuple[FormField, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()
    event: EventDefinition | None = None
    attached_to: str | None = None
    interrupting: bool = True
    slot: int = 0                       # boundary events: position along the host's bottom edge
    width: float | None = None          # tasks: wider than usual (room for boundary events)
    default_flow: str | None = None
    reads: tuple[str, ...] = ()         # data object reference ids read (dataInputAssociation)
    writes: tuple[str, ...] = ()        # data object reference ids written
    parent: str | None = None           # id of the enclosing event sub-process


@dataclass
class Flow:
    id: str
    source: str
    target: str
    name: str | None = None
    condition: str | None = None
    route: Route = "auto"
    via: float | None = None            # row (in the source's lane) used by loop routes
    via_lane: str | None = None


@dataclass(frozen=True)
class Lane:
    id: str
    name: str


@dataclass
class DataReference:
    """A `bpmn:dataObjectReference` shape pointing at a process-level data object."""

    id: str
    data_object: str
    name: str
    lane: str
    col: float
    row: float
    parent: str | None = None


@dataclass(frozen=True)
class Message:
    id: str
    name: str


@dataclass(frozen=True)
class Escalation:
    id: str
    name: str
    code: str


@dataclass
class Process:
    id: str
    name: str
    pool_name: str
    lanes: list[Lane]
    nodes: list[Node] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)
    data_objects: list[tuple[str, str]] = field(default_factory=list)   # (id, name)
    references: list[DataReference] = field(default_factory=list)
    documentation: str | None = None

    def add(self, node: Node) -> Node:
        if any(n.id == node.id for n in self.nodes):
            raise ValueError(f"duplicate node id {node.id}")
        self.nodes.append(node)
        return node

    def connect(self, source: str, target: str, *, name: str | None = None,
                condition: str | None = None, route: Route = "auto", via: float | None = None,
                via_lane: str | None = None, flow_id: str | None = None) -> Flow:
        flow = Flow(flow_id or f"Flow_{_short(source)}_to_{_short(target)}", source, target,
                    name, condition, route, via, via_lane)
        if any(f.id == flow.id for f in self.flows):
            raise ValueError(f"duplicate flow id {flow.id}")
        self.flows.append(flow)
        return flow

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


@dataclass
class Definitions:
    """One BPMN file: shared messages and escalations, and its processes (one pool each)."""

    id: str
    processes: list[Process]
    messages: list[Message] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)


def _short(element_id: str) -> str:
    for prefix in ("Activity_", "Gateway_", "Event_"):
        if element_id.startswith(prefix):
            return element_id[len(prefix):]
    return element_id
