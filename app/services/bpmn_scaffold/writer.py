"""BPMN 2.0 XML for `Definitions`, shaped like the files bpmn-js with the Camunda 7 moddle saves."""

from __future__ import annotations

from lxml import etree

from .layout import Box, Diagram, input_association_id, layout, output_association_id
from .model import Definitions, FormField, Node, Process

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MODELER = "http://camunda.org/schema/modeler/1.0"
NSMAP = {"bpmn": BPMN, "bpmndi": BPMNDI, "dc": DC, "di": DI, "camunda": CAMUNDA, "xsi": XSI,
         "modeler": MODELER}


def _b(tag: str) -> str:
    return f"{{{BPMN}}}{tag}"


def _c(tag: str) -> str:
    return f"{{{CAMUNDA}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None,
         **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, {k: v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _formal(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = _sub(parent, _b(tag), text)
    element.set(f"{{{XSI}}}type", "bpmn:tFormalExpression")
    return element


def render_definitions(definitions: Definitions) -> bytes:
    """The whole file as UTF-8 bytes."""
    root = etree.Element(_b("definitions"), nsmap=NSMAP)  # type: ignore[arg-type]
    root.set("id", definitions.id)
    root.set("targetNamespace", "http://bpmn.io/schema/bpmn")
    root.set("exporter", "Camunda Modeler")
    root.set("exporterVersion", "5.31.0")
    root.set(f"{{{MODELER}}}executionPlatform", "Camunda Platform")
    root.set(f"{{{MODELER}}}executionPlatformVersion", "7.22.0")
    key = definitions.id.removeprefix("Definitions_")
    collaboration = _sub(root, _b("collaboration"), id=f"Collaboration_{key}")
    for process in definitions.processes:
        _sub(collaboration, _b("participant"), id=f"Participant_{process.id}",
             name=process.pool_name, processRef=process.id)
    diagrams = [(process, layout(process)) for process in definitions.processes]
    for process, _ in diagrams:
        _process(root, process)
    for message in definitions.messages:
        _sub(root, _b("message"), id=message.id, name=message.name)
    for escalation in definitions.escalations:
        _sub(root, _b("escalation"), id=escalation.id, name=escalation.name,
             escalationCode=escalation.code)
    _diagram(root, definitions, diagrams)
    etree.indent(root, space="  ")
    body = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    # bpmn-js writes empty elements as `<x a="1" />`
    body = body.replace(b'"/>', b'" />')
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


def _process(root: etree._Element, process: Process) -> None:
    element = _sub(root, _b("process"), id=process.id, name=process.name, isExecutable="true")
    if process.documentation:
        _sub(element, _b("documentation"), process.documentation)
    lane_set = _sub(element, _b("laneSet"), id=f"LaneSet_{process.id}")
    for lane in process.lanes:
        lane_element = _sub(lane_set, _b("lane"), id=lane.id, name=lane.name)
        for node in process.nodes:
            if node.lane == lane.id and node.parent is None:
                _sub(lane_element, _b("flowNodeRef"), node.id)
    for data_id, data_name in process.data_objects:
        _sub(element, _b("dataObject"), id=data_id, name=data_name)
    containers: dict[str | None, etree._Element] = {None: element}
    for node in process.nodes:
        parent = containers[node.parent]
        node_element = _node(parent, node, process)
        if node.kind == "subProcess":
            containers[node.id] = node_element
    for flow in process.flows:
        parent = containers[process.node(flow.source).parent]
        flow_element = _sub(parent, _b("sequenceFlow"), id=flow.id, sourceRef=flow.source,
                            targetRef=flow.target)
        if flow.name:
            flow_element.set("name", flow.name)
        if flow.condition:
            _formal(flow_element, "conditionExpression", flow.condition)
    for ref in process.references:
        _sub(containers[ref.parent], _b("dataObjectReference"), id=ref.id, name=ref.name,
             dataObjectRef=ref.data_object)


def _node(parent: etree._Element, node: Node, process: Process) -> etree._Element:
    element = _sub(parent, _b(node.kind), id=node.id)
    if node.name:
        element.set("name", node.name)
    if node.kind == "scriptTask":
        element.set("scriptFormat", "python")
    if node.kind == "callActivity" and node.called:
        element.set("calledElement", node.called)
    if node.kind == "subProcess":
        element.set("triggeredByEvent", "true")
    if node.kind == "boundaryEvent":
        if not node.interrupting:
            element.set("cancelActivity", "false")
        element.set("attachedToRef", node.attached_to or "")
    if node.kind == "startEvent" and not node.interrupting:
        element.set("isInterrupting", "false")
    if node.default_flow:
        element.set("default", node.default_flow)
    if node.documentation:
        _sub(element, _b("documentation"), node.documentation)
    _extensions(element, node)
    for flow in process.flows:
        if flow.target == node.id:
            _sub(element, _b("incoming"), flow.id)
    for flow in process.flows:
        if flow.source == node.id:
            _sub(element, _b("outgoing"), flow.id)
    if node.reads:
        placeholder = f"Property_{node.id}"
        _sub(element, _b("property"), id=placeholder, name="__targetRef_placeholder")
        for ref_id in node.reads:
            association = _sub(element, _b("dataInputAssociation"),
                               id=input_association_id(node.id, ref_id))
            _sub(association, _b("sourceRef"), ref_id)
            _sub(association, _b("targetRef"), placeholder)
    for ref_id in node.writes:
        association = _sub(element, _b("dataOutputAssociation"),
                           id=output_association_id(node.id, ref_id))
        _sub(association, _b("targetRef"), ref_id)
    if node.event is not None:
        _event_definition(element, node)
    if node.script is not None:
        _sub(element, _b("script"), node.script)
    return element


def _extensions(element: etree._Element, node: Node) -> None:
    mappings = node.kind == "callActivity"
    if not (node.fields or node.properties or mappings):
        return
    extensions = _sub(element, _b("extensionElements"))
    if mappings:
        _sub(extensions, _c("in"), variables="all")
        _sub(extensions, _c("out"), variables="all")
    if node.properties:
        properties = _sub(extensions, _c("properties"))
        for name, value in node.properties:
            _sub(properties, _c("property"), name=name, value=value)
    if node.fields:
        form = _sub(extensions, _c("formData"))
        for form_field in node.fields:
            _form_field(form, form_field)


def _form_field(form: etree._Element, spec: FormField) -> None:
    element = _sub(form, _c("formField"), id=spec.id, label=spec.label, type=spec.type)
    if spec.default is not None:
        element.set("defaultValue", spec.default)
    if spec.widget or spec.properties:
        properties = _sub(element, _c("properties"))
        if spec.widget:
            _sub(properties, _c("property"), id="widget", value=spec.widget)
        for name, value in spec.properties:
            _sub(properties, _c("property"), id=name, value=value)
    constraints: list[tuple[str, str | None]] = []
    if spec.required:
        constraints.append(("required", None))
    if spec.min is not None:
        constraints.append(("min", str(spec.min)))
    if spec.max is not None:
        constraints.append(("max", str(spec.max)))
    if spec.maxlength is not None:
        constraints.append(("maxlength", str(spec.maxlength)))
    if constraints:
        validation = _sub(element, _c("validation"))
        for name, config in constraints:
            constraint = _sub(validation, _c("constraint"), name=name)
            if config is not None:
                constraint.set("config", config)
    for option_id, option_name in spec.options:
        _sub(element, _c("value"), id=option_id, name=option_name)


def _event_definition(element: etree._Element, node: Node) -> None:
    event = node.event
    assert event is not None
    if event.kind == "timer":
        definition = _sub(element, _b("timerEventDefinition"), id=f"TimerEventDefinition_{node.id}")
        _formal(definition, event.timer or "timeDuration", event.value or "")
    elif event.kind == "message":
        definition = _sub(element, _b("messageEventDefinition"),
                          id=f"MessageEventDefinition_{node.id}", messageRef=event.ref or "")
        if event.result_variable:
            definition.set(_c("resultVariable"), event.result_variable)
    elif event.kind == "escalation":
        _sub(element, _b("escalationEventDefinition"),
             id=f"EscalationEventDefinition_{node.id}", escalationRef=event.ref or "")
    elif event.kind == "terminate":
        _sub(element, _b("terminateEventDefinition"), id=f"TerminateEventDefinition_{node.id}")


def _bounds(parent: etree._Element, box: Box) -> None:
    etree.SubElement(parent, f"{{{DC}}}Bounds", x=_n(box.x), y=_n(box.y), width=_n(box.w),
                     height=_n(box.h))


def _n(value: float) -> str:
    return str(int(round(value)))


def _diagram(root: etree._Element, definitions: Definitions,
             diagrams: list[tuple[Process, Diagram]]) -> None:
    key = definitions.id.removeprefix("Definitions_")
    diagram_element = _sub(root, f"{{{BPMNDI}}}BPMNDiagram", id=f"BPMNDiagram_{key}")
    plane = _sub(diagram_element, f"{{{BPMNDI}}}BPMNPlane", id=f"BPMNPlane_{key}",
                 bpmnElement=f"Collaboration_{key}")
    for process, diagram in diagrams:
        shape = _shape(plane, f"Participant_{process.id}")
        shape.set("isHorizontal", "true")
        _bounds(shape, diagram.pool)
        for lane in process.lanes:
            shape = _shape(plane, lane.id)
            shape.set("isHorizontal", "true")
            _bounds(shape, diagram.lanes[lane.id])
        for node in _drawing_order(process):
            shape = _shape(plane, node.id)
            if node.kind == "exclusiveGateway":
                shape.set("isMarkerVisible", "true")
            if node.kind == "subProcess":
                shape.set("isExpanded", "true")
            _bounds(shape, diagram.shapes[node.id])
            label = diagram.labels.get(node.id)
            if label is not None:
                _bounds(_sub(shape, f"{{{BPMNDI}}}BPMNLabel"), label)
        for ref in process.references:
            _bounds(_shape(plane, ref.id), diagram.shapes[ref.id])
        for flow in process.flows:
            _edge(plane, flow.id, diagram.edges[flow.id], diagram.labels.get(flow.id))
        for node in process.nodes:
            for ref_id in node.writes:
                edge_id = output_association_id(node.id, ref_id)
                _edge(plane, edge_id, diagram.edges[edge_id], None)
            for ref_id in node.reads:
                edge_id = input_association_id(node.id, ref_id)
                _edge(plane, edge_id, diagram.edges[edge_id], None)


def _drawing_order(process: Process) -> list[Node]:
    """Containers before their content, hosts before their boundary events."""
    first = [n for n in process.nodes if n.kind not in ("boundaryEvent",) and n.parent is None]
    ordered: list[Node] = []
    for node in first:
        ordered.append(node)
        if node.kind == "subProcess":
            ordered += [n for n in process.nodes if n.parent == node.id]
    ordered += [n for n in process.nodes if n.kind == "boundaryEvent"]
    return ordered


def _shape(plane: etree._Element, element_id: str) -> etree._Element:
    return _sub(plane, f"{{{BPMNDI}}}BPMNShape", id=f"{element_id}_di", bpmnElement=element_id)


def _edge(plane: etree._Element, element_id: str, points: list[tuple[float, float]],
          label: Box | None) -> None:
    edge = _sub(plane, f"{{{BPMNDI}}}BPMNEdge", id=f"{element_id}_di", bpmnElement=element_id)
    for x, y in points:
        etree.SubElement(edge, f"{{{DI}}}waypoint", x=_n(x), y=_n(y))
    if label is not None:
        _bounds(_sub(edge, f"{{{BPMNDI}}}BPMNLabel"), label)
