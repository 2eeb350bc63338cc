"""Loading versions: hardened XML, static checks, engine parsing, hashing and the spec cache."""

from __future__ import annotations

import time

import pytest

from tests.workflows.bpmn_helpers import (
    definitions,
    fixture_bytes,
    linear_process,
    messages_of,
    problems_of,
    script_process,
)
from workflows import (
    CompileOptions,
    DefinitionError,
    Runtime,
    SpecCache,
    compile_version,
    version_hash,
)

USER_TASK = """
    <bpmn:userTask id="work" name="Work" />
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />"""


def timer_process(kind: str, value: str, interrupting: bool = True) -> bytes:
    cancel = "true" if interrupting else "false"
    return definitions(linear_process(f"""
    <bpmn:userTask id="work" name="Work" />
    <bpmn:boundaryEvent id="timer" cancelActivity="{cancel}" attachedToRef="work">
      <bpmn:outgoing>f_t</bpmn:outgoing>
      <bpmn:timerEventDefinition id="ted">
        <bpmn:{kind} xsi:type="bpmn:tFormalExpression">{value}</bpmn:{kind}>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f_t" sourceRef="timer" targetRef="late" />
    <bpmn:endEvent id="late" />
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />"""))


def test_fixture_compiles_with_forms_and_hash(alert_version):
    assert alert_version.process_ids == ("alert_handling",)
    assert len(alert_version.hash) == 64
    fields = alert_version.form_fields("alert_handling", "confirm_alert")
    assert [f.id for f in fields] == ["confirmed", "severity", "note"]
    severity = fields[1]
    assert severity.type == "enum" and severity.default == "medium"
    assert [o.id for o in severity.options] == ["low", "medium", "high"]
    assert fields[0].required and fields[2].maxlength == 200
    people = alert_version.form_fields("alert_handling", "dispatch")[1]
    assert (people.type, people.default, people.min, people.max) == ("long", 2, 0, 500)


def test_elements_list_drawn_elements_with_lanes(alert_version):
    elements = {e.element_id: e for e in alert_version.elements("alert_handling")}
    assert "confirm_alert.BoundaryEventSplit" not in elements and "Start" not in elements
    assert (elements["escalate"].lane, elements["escalate"].element_type) == ("应急管理局",
                                                                              "UserTask")
    assert elements["dispatch_timeout"].name == "30分钟未处置"
    assert len(elements) == 14  # every flow node; sequence flows are not elements here


def test_malformed_xml_names_file_and_line():
    problems = problems_of({"broken.bpmn": b"<bpmn:definitions>\n<unclosed>"})
    assert problems[0].file == "broken.bpmn"
    assert "not well-formed XML" in problems[0].message
    assert problems[0].line is not None


def test_doctype_is_refused():
    data = definitions(linear_process(USER_TASK)).replace(
        b"<bpmn:definitions", b"<!DOCTYPE bpmn:definitions>\n<bpmn:definitions", 1)
    assert "DOCTYPE" in messages_of({"d.bpmn": data})


def test_external_entity_never_reads_the_file():
    with open("/etc/passwd", encoding="utf-8") as handle:
        secret = handle.readline().strip()
    data = (b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            + definitions(linear_process(USER_TASK)).split(b"\n", 1)[1]
            .replace(b'name="Work"', b'name="&xxe;"'))
    with pytest.raises(DefinitionError) as caught:
        Runtime().compile({"x.bpmn": data})
    text = str(caught.value) + repr(caught.value.problems)
    assert "DOCTYPE" in text
    assert secret not in text and "root:" not in text


def test_utf16_doctype_is_refused_after_parsing():
    text = ('<?xml version="1.0" encoding="UTF-16"?>\n'
            '<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<d>&xxe;</d>')
    assert "DOCTYPE" in messages_of({"u.bpmn": text.encode("utf-16")})


def test_billion_laughs_is_refused_quickly():
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">' for i in range(1, 10)
    )
    data = f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><lolz>&lol9;</lolz>'.encode()
    started = time.perf_counter()
    message = messages_of({"bomb.bpmn": data})
    assert time.perf_counter() - started < 1.0
    assert "DOCTYPE" in message


def test_oversized_file_is_refused():
    wf_runtime = Runtime(compile_options=CompileOptions(max_file_bytes=1000))
    big = definitions(linear_process(USER_TASK), extra="<!--" + "x" * 2000 + "-->")
    problems = problems_of({"big.bpmn": big}, wf_runtime)
    assert "the limit is 1000 bytes" in problems[0].message


def test_not_bpmn_root():
    assert "root element must be bpmn:definitions" in messages_of({"a.bpmn": b"<svg/>"})


def test_no_start_event():
    body = """
  <bpmn:process id="nostart" isExecutable="true">
    <bpmn:userTask id="work" />
  </bpmn:process>"""
    problem = problems_of({"n.bpmn": definitions(body)})[0]
    assert problem.element_id == "nostart" and problem.line == 4
    assert "has no start event" in problem.message


def test_call_activity_to_missing_process():
    body = linear_process("""
    <bpmn:callActivity id="work" calledElement="big_loop" />
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""")
    problem = problems_of({"c.bpmn": definitions(body)})[0]
    assert problem.element_id == "work"
    assert "calls process 'big_loop', which is not in this version" in problem.message


def test_call_activity_resolves_in_other_file_of_same_version(wf_runtime):
    version = wf_runtime.compile({
        "caller.bpmn": fixture_bytes("big_loop_caller.bpmn"),
        "inspection.bpmn": fixture_bytes("big_loop_inspection.bpmn"),
    })
    assert set(version.dependencies["scenario_gas"]) == {"inspection"}


def test_script_syntax_error_has_line_in_file():
    problem = problems_of({"s.bpmn": script_process("x = 1\ny = (2 +\n")})[0]
    assert problem.element_id == "work"
    assert "script: Python syntax error" in problem.message
    assert problem.line is not None and problem.line >= 6


def test_condition_syntax_error():
    body = linear_process("""
    <bpmn:exclusiveGateway id="work" default="f_no" />
    <bpmn:sequenceFlow id="f_yes" sourceRef="work" targetRef="end">
      <bpmn:conditionExpression>level ==</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="work" targetRef="end" />""")
    problem = problems_of({"g.bpmn": definitions(body)})[0]
    assert problem.element_id == "f_yes"
    assert "condition: Python syntax error" in problem.message


def test_el_condition_gets_python_hint():
    body = linear_process("""
    <bpmn:exclusiveGateway id="work" default="f_no" />
    <bpmn:sequenceFlow id="f_yes" sourceRef="work" targetRef="end">
      <bpmn:conditionExpression>${confirmed}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="work" targetRef="end" />""")
    message = messages_of({"g.bpmn": definitions(body)})
    assert "conditions here are Python expressions: write 'confirmed'" in message
    assert "'${confirmed}'" in message


@pytest.mark.parametrize(("condition", "python"), [
    ("${amount &gt; 1000 &amp;&amp; !approved}", "amount > 1000 and not approved"),
    ("#{level eq 'red'}", "level == 'red'"),
    ("= amount &gt; 1000 and approved = true", "amount > 1000 and approved == True"),
    ("=x &lt;= 3", "x <= 3"),
])
def test_feel_and_juel_conditions_name_the_python_to_write(condition, python):
    body = linear_process(f"""
    <bpmn:exclusiveGateway id="work" default="f_no" />
    <bpmn:sequenceFlow id="f_yes" sourceRef="work" targetRef="end">
      <bpmn:conditionExpression>{condition}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="work" targetRef="end" />""")
    (problem,) = problems_of({"g.bpmn": definitions(body)})
    assert problem.code == "foreign_expression"
    assert problem.params["python"] == python
    assert problem.element == "f_yes" and problem.process is not None


def test_empty_form_field_is_refused():
    body = linear_process("""
    <bpmn:userTask id="work">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="ok" label="OK" type="boolean" />
          <camunda:formField />
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""")
    problem = problems_of({"f.bpmn": definitions(body)})[0]
    assert problem.element_id == "work"
    assert "a form field has no id" in problem.message


@pytest.mark.parametrize("xml_field, expected", [
    ('<camunda:formField id="1x" type="string" />', "not a valid variable name"),
    ('<camunda:formField id="n" type="color" />', "unsupported type 'color'"),
    ('<camunda:formField id="n" type="enum" />', "enum without values"),
    ('<camunda:formField id="n" type="long" defaultValue="many" />', "must be a whole number"),
    ('<camunda:formField id="n" type="long"><camunda:validation>'
     '<camunda:constraint name="max" config="lots" /></camunda:validation></camunda:formField>',
     "needs a number"),
    ('<camunda:formField id="n" type="string"><camunda:validation>'
     '<camunda:constraint name="regex" config="x" /></camunda:validation></camunda:formField>',
     "unknown constraint 'regex'"),
])
def test_bad_form_fields(xml_field, expected):
    body = linear_process(f"""
    <bpmn:userTask id="work"><bpmn:extensionElements><camunda:formData>{xml_field}
    </camunda:formData></bpmn:extensionElements></bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""")
    assert expected in messages_of({"f.bpmn": definitions(body)})


def test_naive_timer_date_is_refused():
    problem = problems_of({"t.bpmn": timer_process("timeDate", "2026-01-01T08:00:00")})[0]
    assert problem.element_id == "ted"
    assert "has no time zone" in problem.message and "+08:00" in problem.message


@pytest.mark.parametrize("kind, value, expected", [
    ("timeDuration", "PT30X", "not an ISO 8601 duration"),
    ("timeCycle", "R3/PT10M/PT5M", "exactly one duration"),
    ("timeCycle", "R2/2026-01-01T08:00:00/PT1H", "has no time zone"),
    ("timeDuration", "", "the timer has no value"),
    ("timeDuration", "'P' + ", "timer expression: Python syntax error"),
    ("timeDate", "'2026-01-01T08:00:00'", "has no time zone"),
])
def test_bad_timer_values(kind, value, expected):
    assert expected in messages_of({"t.bpmn": timer_process(kind, value)})


@pytest.mark.parametrize("kind, value", [
    ("timeDuration", "PT30M"),
    ("timeDuration", "P1DT2H"),
    ("timeCycle", "R3/PT10M"),
    ("timeDate", "2026-01-01T08:00:00+08:00"),
    ("timeDuration", "'PT' + str(minutes) + 'M'"),
    ("timeDuration", "'PT45M'"),
])
def test_good_timer_values(wf_runtime, kind, value):
    version = wf_runtime.compile({"t.bpmn": timer_process(kind, value)})
    expression = version.spec("p").task_specs["timer"].event_definition.expression
    assert expression == (repr(value) if not value.startswith("'") else value)


@pytest.mark.parametrize("inner, expected", [
    ('<bpmn:serviceTask id="work" />', "service tasks are not supported"),
    ('<bpmn:businessRuleTask id="work" />', "business rule (DMN) tasks are not supported"),
    ('<bpmn:userTask id="work"><bpmn:multiInstanceLoopCharacteristics camunda:collection="xs" />'
     '</bpmn:userTask>', "multi-instance activities are not supported"),
    ('<bpmn:userTask id="work"><bpmn:extensionElements><camunda:taskListener event="create">'
     '<camunda:script scriptFormat="python">x=1</camunda:script></camunda:taskListener>'
     '</bpmn:extensionElements></bpmn:userTask>', "task listeners are not run"),
    ('<bpmn:callActivity id="work" calledElement="p"><bpmn:extensionElements>'
     '<camunda:in source="a" target="b" /></bpmn:extensionElements></bpmn:callActivity>',
     "variable mappings are not supported"),
    ('<bpmn:scriptTask id="work" scriptFormat="javascript"><bpmn:script>x = 1</bpmn:script>'
     '</bpmn:scriptTask>', "script format 'javascript' is not supported"),
    ('<bpmn:scriptTask id="work" />', "has no script"),
])
def test_unsupported_constructs_are_explained(inner, expected):
    body = linear_process(inner + '\n<bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end"/>')
    assert expected in messages_of({"u.bpmn": definitions(body)})


def test_all_variables_mapping_is_accepted(wf_runtime):
    body = definitions(linear_process("""
    <bpmn:callActivity id="work" calledElement="sub"><bpmn:extensionElements>
      <camunda:in variables="all" /><camunda:out variables="all" />
    </bpmn:extensionElements></bpmn:callActivity>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""") + linear_process(
        USER_TASK, "sub"))
    assert "sub" in wf_runtime.compile({"a.bpmn": body}).dependencies["p"]


def test_same_process_id_in_two_files_is_refused():
    data = definitions(linear_process(USER_TASK))
    problems = problems_of({"a.bpmn": data, "b.bpmn": data})
    assert problems[0].file == "b.bpmn"
    assert "also defined in a.bpmn" in problems[0].message


def test_all_problems_are_reported_together():
    body = linear_process("""
    <bpmn:scriptTask id="work"><bpmn:script>import os</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="gw" />
    <bpmn:exclusiveGateway id="gw" default="f3" />
    <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="end">
      <bpmn:conditionExpression>${ok}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="end" />""")
    problems = problems_of({"many.bpmn": definitions(body)})
    assert {p.element_id for p in problems} == {"work", "f2"}
    assert all(p.file == "many.bpmn" and p.line for p in problems)
    assert "many.bpmn:" in str(problems[0])


def test_engine_validation_error_becomes_problem():
    body = linear_process("""
    <bpmn:userTask id="work" />
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />""")
    problem = problems_of({"e.bpmn": definitions(body)})[0]
    assert problem.element_id == "work" and problem.line is not None
    assert "the engine cannot use this definition" in problem.message


def test_hash_ignores_file_order_and_depends_on_names_and_content():
    a, b = b"<a/>", b"<b/>"
    assert version_hash({"x": a, "y": b}) == version_hash([("y", b), ("x", a)])
    assert version_hash({"x": a, "y": b}) != version_hash({"x": b, "y": a})
    assert version_hash({"xy": a}) != version_hash({"x": b"y" + a})


def test_cache_shares_one_spec_and_evicts_least_recent():
    cache = SpecCache(max_versions=2)
    files = [{f"{i}.bpmn": definitions(linear_process(USER_TASK, f"p{i}"))} for i in range(3)]
    first = cache.load(files[0])
    assert cache.load(dict(files[0])) is first
    cache.load(files[1])
    cache.get(first.hash)  # touch: now files[1] is the least recent
    cache.load(files[2])
    assert len(cache) == 2
    assert cache.get(first.hash) is first
    assert cache.get(version_hash(files[1])) is None


def test_one_parser_per_version_allows_same_process_in_two_versions():
    one = compile_version({"a.bpmn": definitions(linear_process(USER_TASK))})
    two = compile_version({"a.bpmn": fixture_bytes("alert_handling.bpmn"),
                           "b.bpmn": definitions(linear_process(USER_TASK))})
    assert one.spec("p") is not two.spec("p")


def test_a_form_field_problem_is_pinned_on_its_task_with_the_field_as_child():
    body = linear_process("""
    <bpmn:userTask id="work">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="amount" label="Amount" type="long" defaultValue="many" />
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f_end" sourceRef="work" targetRef="end" />""")
    (problem,) = problems_of({"f.bpmn": definitions(body)})
    assert (problem.code, problem.element, problem.child) == ("form_field", "work", "amount")
    assert problem.to_dict()["child"] == "amount" and problem.to_dict()["code"] == "form_field"
