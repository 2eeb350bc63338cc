"""Static checks of a version's BPMN trees before SpiffWorkflow sees them.

Every problem names the file, the element and the source line, and says what to fix; all
problems of a version are collected at once so a designer sees the whole list. The checks cover
what the engine would otherwise accept and fail on later (or silently ignore): scripts and
expressions (see `safety`), timer values, form fields, call activity targets, start events, and
Camunda extensions this engine does not run (listeners, input/output parameters, explicit
call-activity variable mappings, multi-instance markers, service and business rule tasks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from lxml import etree

from .documents import BPMN_NS, CAMUNDA_NS, BpmnDocument, source_line
from .errors import Problem
from .expressions import python_for_foreign
from .forms import EnumOption, FormField, build_form_field, field_id_problem
from .guards import ScriptLimits
from .pinning import FileIndex
from .safety import Mode, check_source
from .timers import TimerKind, check_timer_text

_B = f"{{{BPMN_NS}}}"
_C = f"{{{CAMUNDA_NS}}}"

_UNSUPPORTED_TAGS = {
    "serviceTask": "service tasks are not supported; use a script task or a user task",
    "businessRuleTask": "business rule (DMN) tasks are not supported; use a script task",
    "complexGateway": "complex gateways are not supported; use exclusive or parallel gateways",
}
_UNSUPPORTED_EXTENSIONS = {
    "executionListener": "execution listeners are not run by this engine; use a script task",
    "taskListener": "task listeners are not run by this engine; use a script task",
    "inputOutput": "input/output parameters are not supported; use a script task to prepare "
                   "variables",
    "connector": "connectors are not supported",
}


@dataclass
class ValidationResult:
    problems: list[Problem] = field(default_factory=list)
    # (process id, element id) -> form fields of that user task
    forms: dict[tuple[str, str], tuple[FormField, ...]] = field(default_factory=dict)
    # process id -> (file name, executable?)
    processes: dict[str, tuple[str, bool]] = field(default_factory=dict)


def _local(tag: object) -> str:
    return tag.split("}", 1)[1] if isinstance(tag, str) and "}" in tag else str(tag)


def _owner_id(element: etree._Element) -> str | None:
    current: etree._Element | None = element
    while current is not None:
        element_id = current.get("id")
        if element_id:
            return element_id
        current = current.getparent()
    return None


class _DocumentChecker:
    def __init__(self, doc: BpmnDocument, limits: ScriptLimits, result: ValidationResult):
        self.doc = doc
        self.limits = limits
        self.result = result
        self.index = FileIndex(doc.root)

    def problem(self, element: etree._Element, message: str, line: int | None = None, *,
                code: str = "definition", **params: object) -> None:
        self.result.problems.append(Problem(
            self.doc.name, _owner_id(element), line if line is not None else source_line(element),
            message, code=code, params={"detail": message, **params},
            **self.index.place(element),
        ))

    def code(self, element: etree._Element, text: str | None, mode: Mode, what: str) -> None:
        kind = what.replace(" ", "_")
        if len(element):
            # The engine reads `.text`, which stops at the first child element.
            self.problem(element, f"{what}: the text contains the XML element "
                                  f"<{_local(element[0].tag)}>; write it as plain text (escape "
                                  "'<' as '&lt;')", code="text_has_markup", what=kind,
                         tag=_local(element[0].tag))
            return
        if mode == "eval" and text is not None:
            suggestion = python_for_foreign(text)
            if suggestion is not None:
                self.problem(element, f"{what}: {text.strip()!r} is a FEEL or JUEL expression; "
                                      f"conditions here are Python expressions: write "
                                      f"{suggestion!r}", code="foreign_expression", what=kind,
                             expression=text.strip(), python=suggestion)
                return
        for issue in check_source(text, mode, self.limits):
            line = source_line(element)
            if line is not None and issue.line is not None:
                line += issue.line - 1
            self.problem(element, f"{what}: {issue.message}", line, code="unsafe_code",
                         what=kind, detail=issue.message, line_in_text=issue.line)

    def run(self) -> None:
        root = self.doc.root
        for process in root.iter(f"{_B}process"):
            self.inspect_process(process)
        for element in root.iter(etree.Element):
            self.check_element(element)

    def inspect_process(self, process: etree._Element) -> None:
        process_id = process.get("id")
        executable = process.get("isExecutable", "true") == "true"
        if not process_id:
            self.problem(process, "a process has no id", code="process_without_id")
            return
        seen = self.result.processes.get(process_id)
        if seen is not None:
            self.problem(process, f"process id {process_id!r} is also defined in {seen[0]}; "
                                  "process ids must be unique within a version",
                         code="process_defined_twice", process_id=process_id, other=seen[0])
            return
        self.result.processes[process_id] = (self.doc.name, executable)
        if executable and process.find(f"{_B}startEvent") is None:
            self.problem(process, f"process {process_id!r} has no start event; add a start "
                                  "event where the process begins", code="no_start_event",
                         process_id=process_id)

    def check_element(self, element: etree._Element) -> None:
        tag = element.tag
        if not isinstance(tag, str):
            return
        local = _local(tag)
        if tag.startswith(_B):
            handler = getattr(self, f"check_{local}", None)
            if handler is not None:
                handler(element)
            elif local in _UNSUPPORTED_TAGS:
                self.problem(element, _UNSUPPORTED_TAGS[local], code="unsupported_element",
                             tag=local)
        elif tag.startswith(_C) and local in _UNSUPPORTED_EXTENSIONS:
            self.problem(element, _UNSUPPORTED_EXTENSIONS[local],
                         code="unsupported_extension", tag=local)

    # -- BPMN elements -------------------------------------------------------------------------

    def check_scriptTask(self, element: etree._Element) -> None:
        script_format = (element.get("scriptFormat") or "python").strip().lower()
        if script_format not in ("python", "python3", "py"):
            self.problem(element, f"script format {script_format!r} is not supported; "
                                  "scripts are Python", code="script_format",
                         format=script_format)
        script = element.find(f"{_B}script")
        if script is None:
            self.problem(element, "the script task has no script; write the script or use a "
                                  "plain task", code="script_missing")
            return
        self.code(script, script.text, "exec", "script")

    def check_conditionExpression(self, element: etree._Element) -> None:
        self.code(element, element.text, "eval", "condition")

    def check_condition(self, element: etree._Element) -> None:
        self.code(element, element.text, "eval", "condition")

    def check_loopCondition(self, element: etree._Element) -> None:
        self.code(element, element.text, "eval", "loop condition")

    def check_completionCondition(self, element: etree._Element) -> None:
        self.code(element, element.text, "eval", "completion condition")

    def check_multiInstanceLoopCharacteristics(self, element: etree._Element) -> None:
        self.problem(element, "multi-instance activities are not supported (the engine's "
                              "Camunda variant rewrites the shared definition while running); "
                              "use parallel branches or a loop", code="multi_instance")

    def check_standardLoopCharacteristics(self, element: etree._Element) -> None:
        maximum = element.get("loopMaximum")
        if maximum is not None and not maximum.strip().isdigit():
            self.problem(element, f"loopMaximum must be a whole number, not {maximum!r}",
                         code="loop_maximum", value=maximum)

    def _timer(self, element: etree._Element, kind: TimerKind) -> None:
        suggestion = python_for_foreign(element.text or "")
        if suggestion is not None:
            self.problem(element, f"timer: {(element.text or '').strip()!r} is a FEEL or JUEL "
                                  f"expression; timers here are ISO 8601 text or Python "
                                  f"expressions: write {suggestion!r}", code="foreign_expression",
                         what="timer", expression=(element.text or "").strip(),
                         python=suggestion)
            return
        for message in check_timer_text(kind, element.text, self.limits):
            self.problem(element, message, code="timer_invalid", kind=kind,
                         text=(element.text or "").strip())

    def check_timeDate(self, element: etree._Element) -> None:
        self._timer(element, "timeDate")

    def check_timeDuration(self, element: etree._Element) -> None:
        self._timer(element, "timeDuration")

    def check_timeCycle(self, element: etree._Element) -> None:
        self._timer(element, "timeCycle")

    def check_timerEventDefinition(self, element: etree._Element) -> None:
        if not any(element.find(f"{_B}{k}") is not None
                   for k in ("timeDate", "timeDuration", "timeCycle")):
            self.problem(element, "the timer has no time set; choose a date, a duration "
                                  "(e.g. PT30M) or a cycle (e.g. R3/PT10M)", code="timer_empty")

    def check_messageEventDefinition(self, element: etree._Element) -> None:
        payload = element.get(f"{_C}expression")
        if payload is not None:
            self.code(element, payload, "eval", "message payload")

    def check_formalExpression(self, element: etree._Element) -> None:
        parent = element.getparent()
        if parent is not None and _local(parent.tag) == "correlationPropertyRetrievalExpression":
            self.code(element, element.text, "eval", "correlation expression")

    def check_messagePath(self, element: etree._Element) -> None:
        self.code(element, element.text, "eval", "correlation expression")

    def check_callActivity(self, element: etree._Element) -> None:
        if not element.get("calledElement"):
            self.problem(element, "the call activity does not name the process it calls; set "
                                  "'Called element' to a process id of this version",
                         code="call_without_target")
        for mapping in list(element.iter(f"{_C}in")) + list(element.iter(f"{_C}out")):
            if mapping.get("variables") == "all" and len(mapping.attrib) == 1:
                continue
            self.problem(mapping, "call activity variable mappings are not supported: all "
                                  "variables are copied into the called process and back; "
                                  "remove the mapping (or use 'all variables')",
                         code="call_mapping")

    def check_userTask(self, element: etree._Element) -> None:
        process = next((a for a in element.iterancestors(f"{_B}process")), None)
        process_id = process.get("id") if process is not None else None
        fields: list[FormField] = []
        seen: set[str] = set()
        for xml_field in element.iter(f"{_C}formField"):
            form_field = self._form_field(xml_field)
            if form_field is None:
                continue
            if form_field.id in seen:
                self.problem(xml_field, f"form field id {form_field.id!r} is used twice in "
                                        "this form", code="form_field_twice",
                             field=form_field.id)
                continue
            seen.add(form_field.id)
            fields.append(form_field)
        element_id = element.get("id")
        if process_id and element_id:
            self.result.forms[(process_id, element_id)] = tuple(fields)

    def _form_field(self, xml_field: etree._Element) -> FormField | None:
        field_id = xml_field.get("id")
        problem = field_id_problem(field_id)
        if problem:
            self.problem(xml_field, problem, code="form_field_id", field=field_id or "")
            return None
        field_id = cast(str, field_id)
        constraints: dict[str, str | None] = {}
        for constraint in xml_field.iter(f"{_C}constraint"):
            name = constraint.get("name")
            if not name:
                self.problem(constraint, f"form field {field_id!r} has a constraint without a "
                                         "name; remove it or choose e.g. 'required'",
                             code="form_constraint_name", field=field_id)
                continue
            constraints[name] = constraint.get("config")
        options = tuple(
            EnumOption(v.get("id") or "", v.get("name") or v.get("id") or "")
            for v in xml_field.iter(f"{_C}value")
        )
        if any(not o.id for o in options):
            self.problem(xml_field, f"form field {field_id!r} has an enum value without an id",
                         code="form_enum_id", field=field_id)
            return None
        properties = tuple(
            (p.get("id") or "", p.get("value") or "") for p in xml_field.iter(f"{_C}property")
        )
        form_field, problems = build_form_field(
            field_id, xml_field.get("label"), xml_field.get("type"),
            xml_field.get("defaultValue"), constraints, options, properties,
        )
        for message in problems:
            self.problem(xml_field, message, code="form_field", field=field_id)
        return form_field


def validate_documents(documents: Iterable[BpmnDocument], limits: ScriptLimits) -> ValidationResult:
    """Check all documents of one version together (call targets may be in another file)."""
    result = ValidationResult()
    docs = list(documents)
    for doc in docs:
        _DocumentChecker(doc, limits, result).run()
    for doc in docs:
        index = FileIndex(doc.root)
        for call in doc.root.iter(f"{_B}callActivity"):
            target = call.get("calledElement")
            if not target:
                continue
            known = result.processes.get(target)
            if known is None:
                listed = sorted(result.processes)
                names = ", ".join(listed[:10]) or "none"
                if len(listed) > 10:
                    names += f" and {len(listed) - 10} more"
                message = (f"the call activity calls process {target!r}, which is not in this "
                           f"version (processes here: {names}); upload it together or fix "
                           "'Called element'")
                result.problems.append(Problem(
                    doc.name, call.get("id"), source_line(call), message,
                    code="called_process_missing",
                    params={"process_id": target, "known": names, "detail": message},
                    **index.place(call)))
            elif not known[1]:
                message = (f"the call activity calls process {target!r}, which is not "
                           "executable; mark it executable")
                result.problems.append(Problem(
                    doc.name, call.get("id"), source_line(call), message,
                    code="called_process_not_executable",
                    params={"process_id": target, "detail": message}, **index.place(call)))
    return result
