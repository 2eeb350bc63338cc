"""The one place where a definition problem (`workflows.Problem`: code and parameters) is worded
for the user, in the user's language; the engine's English stays available as `detail`."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from app.i18n import _l
from workflows import Problem

# What a piece of designer-written text is, as problems name it.
WHAT = {
    "script": _l("script"), "condition": _l("condition"), "timer": _l("timer"),
    "loop_condition": _l("loop condition"), "completion_condition": _l("completion condition"),
    "message_payload": _l("message payload"),
    "correlation_expression": _l("correlation expression"),
}
# The steps the application relies on (see app/services/steps.py).
STEP_NAMES = {
    "assessment": _l("assessment"), "accept": _l("accept"), "dispose": _l("on-site disposal"),
    "cancel": _l("cancellation"), "feedback": _l("closure feedback"), "verify": _l("verification"),
}

MESSAGES = {
    "definition": _l("%(detail)s"),
    "text_has_markup": _l("The %(what)s contains the XML element <%(tag)s>; write it as plain "
                          "text (escape '<' as '&lt;')."),
    "foreign_expression": _l("The %(what)s %(expression)s is a FEEL or JUEL expression; this "
                             "engine evaluates Python. Write: %(python)s"),
    "unsafe_code": _l("The %(what)s is refused: %(detail)s"),
    "process_without_id": _l("A process has no id; give it one."),
    "process_defined_twice": _l("Process %(process_id)s is also defined in %(other)s; process ids "
                                "must be unique within a version."),
    "no_start_event": _l("Process %(process_id)s has no start event; add one where the process "
                         "begins."),
    "unsupported_element": _l("%(tag)s is not supported by this engine: %(detail)s"),
    "unsupported_extension": _l("The Camunda setting %(tag)s is not run by this engine: "
                                "%(detail)s"),
    "script_format": _l("Script format %(format)s is not supported; scripts are Python."),
    "script_missing": _l("The script task has no script; write the script or use a plain "
                         "task."),
    "multi_instance": _l("Multi-instance activities are not supported; use parallel branches "
                         "or a loop."),
    "loop_maximum": _l("Loop maximum must be a whole number, not %(value)s."),
    "timer_invalid": _l("The timer %(text)s cannot be used: %(detail)s"),
    "timer_empty": _l("The timer has no time set; choose a date, a duration (e.g. PT30M) or a "
                      "cycle (e.g. R3/PT10M)."),
    "call_without_target": _l("The call activity does not name the process it calls; set "
                              "'Called element'."),
    "call_mapping": _l("Call activity variable mappings are not supported: all variables are "
                       "copied in and back; remove the mapping."),
    "form_field_twice": _l("Form field %(field)s is used twice in this form."),
    "form_field_id": _l("A form field has no usable id: %(detail)s"),
    "form_constraint_name": _l("Form field %(field)s has a constraint without a name; remove it "
                               "or choose e.g. 'required'."),
    "form_enum_id": _l("Form field %(field)s has a choice without an id."),
    "form_field": _l("Form field %(field)s: %(detail)s"),
    "called_process_missing": _l("The call activity calls process %(process_id)s, which is not "
                                 "in this version (processes here: %(known)s); add its file or "
                                 "fix 'Called element'."),
    "called_process_not_executable": _l("The call activity calls process %(process_id)s, which "
                                        "is not executable; tick 'Executable' on it."),
    "file_not_bytes": _l("The file content could not be read."),
    "file_too_large": _l("The file has %(size)s bytes; the limit is %(limit)s bytes per file."),
    "not_bpmn": _l("This is not a BPMN 2.0 file: its root element is %(tag)s, not "
                   "bpmn:definitions."),
    "camunda_namespace": _l("The prefix camunda is bound to %(uri)s instead of %(expected)s; "
                            "forms and properties would be lost. Bind xmlns:camunda to "
                            "%(expected)s."),
    "file_encoding": _l("The file is encoded as %(encoding)s, which cannot be read; save it as "
                        "UTF-8."),
    "not_well_formed": _l("The file is not well-formed XML: %(detail)s"),
    "doctype": _l("The file contains a DOCTYPE or entity declaration, which is not allowed; "
                  "save it again from the modeller."),
    "too_many_processes": _l("The version defines %(count)s processes; the limit is "
                             "%(limit)s."),
    "too_many_elements": _l("Process %(process_id)s has %(count)s elements; the limit is "
                            "%(limit)s."),
    "nesting_too_deep": _l("Process %(process_id)s nests sub-processes %(count)s deep; the "
                           "limit is %(limit)s."),
    "chain_too_long": _l("Process %(process_id)s has %(count)s steps in one sequence; the limit "
                         "is %(limit)s. Move parts into called processes."),
    "loop_maximum_too_high": _l("Loop maximum %(value)s is above the limit of %(limit)s runs."),
    "call_cycle": _l("Processes call each other in a cycle (%(processes)s)."),
    "call_chain_too_deep": _l("Process %(process_id)s starts a chain of %(count)s nested call "
                              "activities; the limit is %(limit)s."),
    "call_graph_too_large": _l("The processes call each other too much (more than %(limit)s "
                               "process-to-callee pairs); split the version."),
    "engine_refused": _l("The engine cannot use this definition: %(detail)s"),
    "no_files": _l("A version needs at least one BPMN file."),
    "too_many_files": _l("A version may have at most %(limit)s files."),
    "file_name_twice": _l("Two files have this name."),
    "file_empty": _l("The file is empty."),
    "file_surrogates": _l("The text holds characters that are not Unicode (lone surrogates); "
                          "copy it again from its source."),
    "version_too_large": _l("The files have %(size)s bytes together; the limit is %(limit)s."),
    "check_stopped": _l("Checking the version %(detail)s; it is too large or too complex."),
    "check_failed": _l("Checking the version failed: %(detail)s"),
    "no_process": _l("The files define no process."),
    "no_diagram_layout": _l("The file has no diagram layout (no BPMNDiagram with shapes); lay "
                            "it out in the modeller it came from and export it again."),
    "file_without_process": _l("The file defines no process; a handbook file holds at least "
                               "one process."),
    "no_executable_process": _l("No process of this version is executable (processes: "
                                "%(processes)s). Process %(process_id)s has "
                                "isExecutable=\"%(flag)s\": tick 'Executable' for the process "
                                "that should run."),
    "task_without_lane": _l("User task %(task)s is not in a role or department lane; put it in "
                            "a lane with id Lane_<role> (%(lanes)s)."),
    "task_without_form": _l("User task %(task)s has no form; add the fields the person fills "
                            "in."),
    "warning_type_options": _l("The warning type field offers %(unknown)s, which are not "
                               "weather warning types (%(known)s)."),
    "special_step_missing": _l("Special step %(name)s (%(step)s) of %(data)s is not drawn; add "
                               "a task with id Activity_%(step)s."),
    "feedback_field_missing": _l("Feedback field %(field)s of %(data)s is on no form; add it to "
                                 "the feedback task's form."),
    "cancellation_cause_missing": _l("Cancellation cause %(cause)s of %(data)s is not a choice "
                                     "of the cause_category field."),
    "step_missing": _l("No step is marked as %(step_name)s (step = %(step)s); the application "
                       "needs it. Put the step back, or mark the task that does it with the "
                       "property step = %(step)s."),
    "roles_unknown": _l("The roles property names %(role)s; use %(roles)s."),
    "roles_in_role_lane": _l("The roles property is for department lanes; this task is in the "
                             "%(lane)s lane."),
    "separate_from_unknown": _l("separate_from names %(step)s, which is not a step of "
                                "%(process_id)s."),
    "handbook_process_missing": _l("Process %(process_id)s of handbook %(handbook)s is not "
                                   "defined in its BPMN files."),
    "waiting_step_removed": _l("%(cases)s running case(s) of version %(version)s wait in step "
                               "%(step)s (%(element)s), which this draft no longer has; keep "
                               "the step, or plan where those cases move."),
}


# The engine's own sentences that reach a user as a problem's `detail` (script safety, timers,
# form fields, unsupported elements), worded in the user's language; the groups are filled in.
DETAILS: list[tuple[re.Pattern[str], Any]] = [(re.compile(pattern, re.S), message) for
                                              pattern, message in [
    (r"service tasks are not supported; use a script task or a user task",
     _l("service tasks are not supported; use a script task or a user task")),
    (r"business rule \(DMN\) tasks are not supported; use a script task",
     _l("business rule (DMN) tasks are not supported; use a script task")),
    (r"complex gateways are not supported; use exclusive or parallel gateways",
     _l("complex gateways are not supported; use exclusive or parallel gateways")),
    (r"execution listeners are not run by this engine; use a script task",
     _l("execution listeners are not run by this engine; use a script task")),
    (r"task listeners are not run by this engine; use a script task",
     _l("task listeners are not run by this engine; use a script task")),
    (r"input/output parameters are not supported; use a script task to prepare variables",
     _l("input/output parameters are not supported; use a script task to prepare variables")),
    (r"connectors are not supported", _l("connectors are not supported")),
    # script safety (workflows/safety.py)
    (r"Python syntax error: (?P<msg>.*)",
     _l("Python syntax error (%(msg)s); conditions and scripts are written in Python")),
    (r"the text cannot be parsed: (?P<msg>.*)", _l("the text cannot be parsed (%(msg)s)")),
    (r"conditions and scripts are Python expressions, not Camunda/JUEL: write e\.g\. "
     r"'confirmed' or 'level == \"red\"' instead of (?P<text>.*)",
     _l("conditions and scripts are Python expressions, not Camunda/JUEL: write e.g. "
        "confirmed or level == \"red\" instead of %(text)s")),
    (r"the (?P<what>[a-z ]+) is empty", _l("the text is empty")),
    (r"the text has (?P<n>\d+) characters; the limit is (?P<limit>\d+)",
     _l("the text has %(n)s characters; the limit is %(limit)s")),
    (r"the script is nested too deeply(; split it into steps)?",
     _l("the script is nested too deeply; split it into steps")),
    (r"the script is too complex \(more than (?P<n>\d+) syntax nodes\); split it into "
     r"several tasks", _l("the script is too complex (more than %(n)s syntax nodes); split it "
                          "into several tasks")),
    (r"names starting with '_' are not allowed \((?P<name>.*)\)",
     _l("names starting with '_' are not allowed (%(name)s)")),
    (r"'(?P<name>[^'.]*)' is not available in handbook scripts",
     _l("%(name)s is not available in handbook scripts")),
    (r"attributes starting with '_' are not allowed \((?P<name>.*)\)",
     _l("attributes starting with '_' are not allowed (%(name)s)")),
    (r"setting or deleting attributes is not allowed",
     _l("setting or deleting attributes is not allowed")),
    (r"'\.(?P<name>[^']*)' is not available in handbook scripts; call now\(\) for the "
     r"current time", _l(".%(name)s is not available in handbook scripts; call now() for the "
                         "current time")),
    (r"'\.(?P<name>[^']*)' is not available in handbook scripts; call today\(\) for the "
     r"current date", _l(".%(name)s is not available in handbook scripts; call today() for "
                         "the current date")),
    (r"'\.(?P<name>[^']*)' is not available in handbook scripts; use an f-string",
     _l(".%(name)s is not available in handbook scripts; use an f-string")),
    (r"'\.(?P<name>[^']*)' is not available in handbook scripts; call "
     r"parse_datetime\(text\)", _l(".%(name)s is not available in handbook scripts; call "
                                   "parse_datetime(text)")),
    (r"'\.(?P<name>[^']*)' is not available in handbook scripts",
     _l(".%(name)s is not available in handbook scripts")),
    (r"only helper functions and methods can be called",
     _l("only helper functions and methods can be called")),
    (r"keyword arguments starting with '_' are not allowed \((?P<name>.*)\)",
     _l("keyword arguments starting with '_' are not allowed (%(name)s)")),
    (r"bytes literals are not allowed", _l("bytes literals are not allowed")),
    (r"the text literal is too long", _l("the text literal is too long")),
    (r"the constant expression is too large: (?P<msg>.*)",
     _l("the constant expression is too large (%(msg)s)")),
    (r"f-string format specs must be plain text", _l("f-string format specs must be plain text")),
    (r"the f-string format width is too large", _l("the f-string format width is too large")),
    (r"imports are not allowed; use the helper functions that scripts provide",
     _l("imports are not allowed; use the helper functions that scripts provide")),
    (r"while loops are not allowed; use 'for \.\.\. in range\(n\)' with a bounded n",
     _l("while loops are not allowed; use 'for ... in range(n)' with a bounded n")),
    (r"defining functions is not allowed", _l("defining functions is not allowed")),
    (r"defining classes is not allowed", _l("defining classes is not allowed")),
    (r"try/except is not allowed; let errors stop the task so it can be fixed and retried",
     _l("try/except is not allowed; let errors stop the task so it can be fixed and retried")),
    (r"(?P<name>lambda|raise|global|nonlocal) is not allowed",
     _l("%(name)s is not allowed in handbook scripts")),
    (r"with-statements are not allowed", _l("with-statements are not allowed")),
    (r"async loops are not allowed", _l("async loops are not allowed")),
    (r"'(?P<name>\w+)' is not allowed", _l("%(name)s is not allowed in handbook scripts")),
    # timers (workflows/timers.py)
    (r"the timer has no value; write an ISO 8601 (?P<kind>\w+), e\.g\. (?P<example>\S+)",
     _l("the timer has no value; write an ISO 8601 value, e.g. %(example)s")),
    (r"timer expression: (?P<detail>.*)", _l("timer expression: %(detail)s")),
    (r"a timer value must be ISO 8601 text, not (?P<value>.*)",
     _l("a timer value must be ISO 8601 text, not %(value)s")),
    (r"(?P<text>.*) is not an ISO 8601 date-time \(e\.g\. (?P<example>[^)]*)\)",
     _l("%(text)s is not an ISO 8601 date-time (e.g. %(example)s)")),
    (r"(?P<text>.*) is not an ISO 8601 duration \(e\.g\. (?P<example>[^)]*)\)",
     _l("%(text)s is not an ISO 8601 duration (e.g. %(example)s)")),
    (r"(?P<text>.*) is not an ISO 8601 repetition \(e\.g\. (?P<example>[^)]*)\)",
     _l("%(text)s is not an ISO 8601 repetition (e.g. %(example)s)")),
    (r"(?P<text>.*) needs exactly one duration \(e\.g\. (?P<example>[^)]*)\)",
     _l("%(text)s needs exactly one duration (e.g. %(example)s)")),
    # form fields (workflows/forms.py)
    (r"a form field has no id; give it an id \(it becomes the variable name\) or remove the "
     r"empty field", _l("a form field has no id; give it an id (it becomes the variable name) "
                        "or remove the empty field")),
    (r"form field id (?P<field>.*) is not a valid variable name; use letters, digits and '_' "
     r"\(not starting with a digit\)",
     _l("form field id %(field)s is not a valid variable name; use letters, digits and '_' "
        "(not starting with a digit)")),
    (r"form field id (?P<field>.*) must not start with '_'",
     _l("form field id %(field)s must not start with '_'")),
    (r"form field (?P<field>.*) has the unsupported type (?P<kind>.*); use one of "
     r"(?P<kinds>.*)", _l("form field %(field)s has the unsupported type %(kind)s; use one of "
                          "%(kinds)s")),
    (r"form field (?P<field>.*) is an enum without values; add values",
     _l("form field %(field)s is a choice without values; add values")),
    (r"form field (?P<field>.*) has the unknown constraint (?P<name>.*); use (?P<names>.*)",
     _l("form field %(field)s has the unknown constraint %(name)s; use %(names)s")),
    (r"form field (?P<field>.*): constraint (?P<name>.*) needs a number, not (?P<value>.*)",
     _l("form field %(field)s: constraint %(name)s needs a number, not %(value)s")),
]]


def detail_text(detail: str) -> str:
    """One of the engine's sentences in the user's language (others, e.g. a parser's own
    message, are kept as they are)."""
    for pattern, message in DETAILS:
        found = pattern.fullmatch(detail.strip())
        if found is not None:
            inner = {k: v or "" for k, v in found.groupdict().items()}
            if "detail" in inner:
                inner["detail"] = detail_text(inner["detail"])
            return str(message) % inner if inner else str(message)
    return detail


def text(problem: Problem) -> str:
    """The problem in the user's language, with its parameters filled in."""
    params: dict[str, Any] = defaultdict(str, {k: _plain(v) for k, v in problem.params.items()})
    params.setdefault("detail", problem.message)
    params["detail"] = detail_text(str(params["detail"]))
    if "what" in params:
        params["what"] = str(WHAT.get(params["what"], params["what"]))
    if "step" in params and problem.code == "step_missing":
        params["step_name"] = str(STEP_NAMES.get(params["step"], params["step"]))
    template = MESSAGES.get(problem.code, MESSAGES["definition"])
    return str(template) % params


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float)) else str(value)


def as_dict(problem: Problem) -> dict[str, object]:
    """`Problem.to_dict()` with `message` in the user's language (the engine's English is
    `detail`)."""
    found = problem.to_dict()
    found["detail"] = problem.message
    found["message"] = text(problem)
    return found
