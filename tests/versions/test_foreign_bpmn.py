"""Diagrams written by other modellers (Camunda 7 and 8, Signavio, bpmn.io, Activiti, a script
without layout): checking each gives problems that are coded, pinned on a drawn element (or the
file) and worded in Chinese, and never an exception."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from lxml import etree

from app.services import problem_text
from workflows import DefinitionError, Problem, compile_version

CORPUS = Path(__file__).parent / "foreign"
DI = "http://www.omg.org/spec/BPMN/20100524/DI"
CJK = re.compile(r"[\u4e00-\u9fff]")


def problems_of(name: str) -> list[Problem]:
    try:
        compile_version({name: (CORPUS / name).read_bytes()})
    except DefinitionError as exc:
        return exc.problems
    return []


def drawn(name: str) -> dict[str, str]:
    """bpmnElement -> the id of the BPMNDiagram that draws it."""
    root = etree.parse(str(CORPUS / name)).getroot()
    return {shape.get("bpmnElement"): diagram.get("id")
            for diagram in root.iter(f"{{{DI}}}BPMNDiagram")
            for shape in diagram.iter(f"{{{DI}}}BPMNShape", f"{{{DI}}}BPMNEdge")}


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.bpmn")))
def test_every_problem_is_coded_pinned_and_translated(app: Flask, name: str) -> None:
    problems = problems_of(name)
    assert problems, f"{name} should not pass as it is"
    shapes = drawn(name)
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        for problem in problems:
            assert problem.code in problem_text.MESSAGES and problem.code != "definition"
            assert problem.file == name and problem.severity == "error"
            if problem.element is not None and shapes:
                assert shapes.get(problem.element) == problem.diagram, problem
            if problem.child is not None:
                assert problem.child != problem.element
            shown = problem_text.as_dict(problem)
            assert CJK.search(str(shown["message"])), shown
            assert shown["detail"] == problem.message and "%(" not in str(shown["message"])


def _by_code(name: str) -> dict[str, list[Problem]]:
    found: dict[str, list[Problem]] = {}
    for problem in problems_of(name):
        found.setdefault(problem.code, []).append(problem)
    return found


def test_camunda_7_juel_conditions_and_timer_get_the_python_to_write() -> None:
    found = _by_code("camunda7_juel.bpmn")
    conditions = {p.element: p.params["python"] for p in found["foreign_expression"]}
    assert conditions == {"Flow_yes": "approved and amount > 1000", "Flow_no": "not approved",
                          "Event_remind": "reminderDuration"}
    (timer,) = [p for p in found["foreign_expression"] if p.element == "Event_remind"]
    assert timer.element_id == "TimerEventDefinition_0x9" and timer.child == timer.element_id
    assert [p.element for p in found["unsupported_element"]] == ["Activity_archive"]
    assert [p.element for p in found["form_field_id"]] == ["Activity_approve"]


def test_camunda_8_feel_and_multi_instance_are_pinned_on_their_shapes() -> None:
    found = _by_code("camunda8_feel.bpmn")
    (condition,) = found["foreign_expression"]
    assert condition.element == "Flow_big"
    assert condition.params["python"] == 'total > 500 and status == "open"'
    (loop,) = found["multi_instance"]
    assert (loop.element, loop.child) == ("Task_review", "MultiInstance_reviewers")


def test_no_executable_process_names_each_process_on_its_pool(app: Flask) -> None:
    found = _by_code("signavio_pools.bpmn")
    pools = {p.process: p.element for p in found["no_executable_process"]}
    assert pools == {"sid-process-customer": "sid-pool-customer",
                     "sid-process-office": "sid-pool-office"}
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        text = problem_text.text(found["no_executable_process"][0])
    assert "isExecutable=\"false\"" in text and "sid-process-office" in text


def test_a_problem_in_the_second_diagram_names_that_diagram() -> None:
    (problem,) = problems_of("bpmnio_two_diagrams.bpmn")
    assert (problem.code, problem.element, problem.child, problem.process, problem.diagram) == (
        "timer_invalid", "Follow_timeout", "TimerEventDefinition_follow", "follow_up",
        "Diagram_follow_up")


def test_without_layout_problems_name_the_flow_element() -> None:
    found = _by_code("no_layout.bpmn")
    assert {p.element for p in found["unsafe_code"]} == {"compute"}
    (timer,) = found["timer_empty"]
    assert (timer.element, timer.child, timer.diagram) == ("inner_wait", "inner_timer", None)


def test_a_camunda_prefix_bound_elsewhere_is_a_file_problem() -> None:
    (problem,) = problems_of("activiti_prefix.bpmn")
    assert problem.code == "camunda_namespace" and problem.element is None
    assert problem.params["uri"] == "http://activiti.org/bpmn"


# Three or more English words in a row, once quoted values are set aside: a sentence of the
# engine's that reached a Chinese user untranslated.
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{2,}(?: +[A-Za-z]{2,}){2,}\b")
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|“[^”]*”")


def english_left(message: str, problem: Problem) -> list[str]:
    """English runs of the message once quoted text and the problem's values (code, ids, the
    expression written) are set aside."""
    for key, value in problem.params.items():
        if key != "detail" and str(value).strip():
            message = message.replace(str(value).strip(), "")
    return ENGLISH_RUN.findall(QUOTED.sub("", message))


FAULTY = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs" targetNamespace="x">
  <bpmn:process id="Process_faulty" isExecutable="true">
    <bpmn:startEvent id="Start" />
    <bpmn:serviceTask id="Task_service" />
    <bpmn:scriptTask id="Task_import" scriptFormat="python"><bpmn:script>import os</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:scriptTask id="Task_while"><bpmn:script>while True:
    pass</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="Task_dunder"><bpmn:script>x = y.__class__</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="Task_now"><bpmn:script>x = datetime.now()</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="Task_syntax"><bpmn:script>x = = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:intermediateCatchEvent id="Timer_bad"><bpmn:timerEventDefinition id="TD_bad">
      <bpmn:timeDuration>'soon'</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="Task_form">
      <bpmn:extensionElements>
        <camunda:executionListener event="start" class="x.Y" />
        <camunda:formData>
          <camunda:formField id="1bad" type="string" />
          <camunda:formField id="colour" type="color" />
          <camunda:formField id="size" type="long">
            <camunda:validation><camunda:constraint name="max" config="big" /></camunda:validation>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
  </bpmn:process>
</bpmn:definitions>
"""


def test_the_engines_own_sentences_reach_a_chinese_user_in_chinese(app: Flask) -> None:
    try:
        compile_version({"faulty.bpmn": FAULTY.encode()})
    except DefinitionError as exc:
        problems = exc.problems
    else:
        pytest.fail("the faulty file compiled")
    codes = {p.code for p in problems}
    assert {"unsupported_element", "unsupported_extension", "unsafe_code", "timer_invalid",
            "form_field_id", "form_field"} <= codes, codes
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        for problem in problems:
            shown = problem_text.text(problem)
            assert CJK.search(shown) and not english_left(shown, problem), (problem.message, shown)
    # The corpus of other modellers' files too.
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        for path in sorted(CORPUS.glob("*.bpmn")):
            for problem in problems_of(path.name):
                if problem.code in ("not_well_formed", "engine_refused", "check_failed"):
                    continue  # the parser's and the engine library's own words, quoted
                shown = problem_text.text(problem)
                assert not english_left(shown, problem), (path.name, problem.message, shown)
