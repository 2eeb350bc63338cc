"""Short constructors for lanes, nodes and form fields used by the process builders."""

from __future__ import annotations

from .model import EventDefinition, FormField, Lane, Node, NodeKind, Process, TimerKind

ROLE_LANES = {
    "business_admin": "业务管理员",
    "responder": "处置人员",
    "department_head": "部门责任人",
    "leader_in_charge": "分管责任人",
}
DEPARTMENT_LANES = {
    "emergency": "应急管理局",
    "city_ops": "城运中心",
    "meteorology": "区气象局",
    "departments": "相关部门",
}
SYSTEM = "Lane_system"
LEVELS = (("red", "红色(Ⅰ级)"), ("orange", "橙色(Ⅱ级)"), ("yellow", "黄色(Ⅲ级)"),
          ("blue", "蓝色(Ⅳ级)"))


def lane(code: str) -> Lane:
    """The lane of a role, a department or the system (`Lane_<code>`)."""
    if code == "system":
        return Lane(SYSTEM, "系统自动")
    name = ROLE_LANES.get(code) or DEPARTMENT_LANES[code]
    return Lane(f"Lane_{code}", name)


def lane_id(code: str) -> str:
    return f"Lane_{code}"


def notify(roles: str, notice: str, **extra: str) -> tuple[tuple[str, str], ...]:
    """`camunda:properties` telling the application whom to notify when the element completes."""
    return (("notify", roles), ("notice", notice), *extra.items())


# -- form fields ---------------------------------------------------------------------------------

def text(field_id: str, label: str, *, required: bool = False,
         maxlength: int = 200) -> FormField:
    return FormField(field_id, label, "string", required=required, maxlength=maxlength)


def textarea(field_id: str, label: str, *, required: bool = False,
             maxlength: int = 2000) -> FormField:
    return FormField(field_id, label, "string", required=required, maxlength=maxlength,
                     widget="textarea")


def number(field_id: str, label: str, *, required: bool = False, min: int | None = 0,
           max: int | None = None) -> FormField:
    return FormField(field_id, label, "long", required=required, min=min, max=max)


def flag(field_id: str, label: str, *, default: bool | None = None) -> FormField:
    value = None if default is None else ("true" if default else "false")
    return FormField(field_id, label, "boolean", default=value)


def moment(field_id: str, label: str, *, required: bool = False) -> FormField:
    """A date-time: type date with the datetime widget."""
    return FormField(field_id, label, "date", required=required, widget="datetime")


def upload(field_id: str, label: str, *, required: bool = False) -> FormField:
    """Photo or file evidence: the application stores the upload and keeps its id here."""
    return FormField(field_id, label, "string", required=required, maxlength=500, widget="file")


def choice(field_id: str, label: str, options: tuple[tuple[str, str], ...], *,
           required: bool = True, default: str | None = None) -> FormField:
    return FormField(field_id, label, "enum", required=required, options=options,
                     default=default)


# -- nodes ---------------------------------------------------------------------------------------

def start(process: Process, node_id: str, name: str, lane_ref: str, col: float,
          row: float = 0) -> Node:
    return process.add(Node(node_id, "startEvent", name, lane_ref, col, row))


def event_subprocess(process: Process, node_id: str, name: str, start_id: str, start_name: str,
                     col: float, row: float, event: EventDefinition) -> Node:
    """A non-interrupting event sub-process in the system lane and its start event."""
    container = process.add(Node(node_id, "subProcess", name, SYSTEM, col, row))
    process.add(Node(start_id, "startEvent", start_name, None, col, row, event=event,
                     interrupting=False, parent=node_id))
    return container


def end(process: Process, node_id: str, name: str, lane_ref: str, col: float, row: float = 0,
        *, terminate: bool = False, escalation: str | None = None,
        parent: str | None = None) -> Node:
    event = None
    if terminate:
        event = EventDefinition("terminate")
    elif escalation:
        event = EventDefinition("escalation", ref=escalation)
    return process.add(Node(node_id, "endEvent", name, None if parent else lane_ref, col, row,
                            event=event, parent=parent))


def user(process: Process, node_id: str, name: str, role: str, col: float, row: float = 0, *,
         doc: str, fields: tuple[FormField, ...] = (),
         properties: tuple[tuple[str, str], ...] = ()) -> Node:
    return process.add(Node(node_id, "userTask", name, lane_id(role), col, row,
                            documentation=doc, fields=fields, properties=properties))


def script(process: Process, node_id: str, name: str, col: float, row: float = 0, *,
           code: str, properties: tuple[tuple[str, str], ...] = (),
           reads: tuple[str, ...] = (), writes: tuple[str, ...] = (),
           parent: str | None = None, doc: str | None = None) -> Node:
    return process.add(Node(node_id, "scriptTask", name, None if parent else SYSTEM, col, row,
                            script=code.strip("\n"), properties=properties, reads=reads,
                            writes=writes, parent=parent, documentation=doc))


def call(process: Process, node_id: str, name: str, called: str, lane_ref: str, col: float,
         row: float = 0, *, doc: str | None = None) -> Node:
    return process.add(Node(node_id, "callActivity", name, lane_ref, col, row, called=called,
                            documentation=doc))


def gateway(process: Process, node_id: str, name: str, lane_ref: str, col: float,
            row: float = 0, *, kind: NodeKind = "exclusiveGateway",
            default: str | None = None, parent: str | None = None) -> Node:
    assert kind in ("exclusiveGateway", "parallelGateway", "inclusiveGateway")
    return process.add(Node(node_id, kind, name, None if parent else lane_ref, col, row,
                            default_flow=default, parent=parent))


def timer(process: Process, node_id: str, name: str, host: str, kind: TimerKind, value: str, *,
          interrupting: bool = False, slot: int = 1) -> Node:
    return process.add(Node(node_id, "boundaryEvent", name, process.node(host).lane, 0,
                            attached_to=host, interrupting=interrupting, slot=slot,
                            event=EventDefinition("timer", timer=kind, value=value)))


def catch_escalation(process: Process, node_id: str, name: str, host: str, escalation: str, *,
                     slot: int = 1) -> Node:
    return process.add(Node(node_id, "boundaryEvent", name, process.node(host).lane, 0,
                            attached_to=host, slot=slot,
                            event=EventDefinition("escalation", ref=escalation)))
