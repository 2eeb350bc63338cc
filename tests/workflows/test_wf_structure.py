"""Versions too large or too tangled to compile are refused early; any XML encoding is read;
comments inside scripts do not cut them short."""

from __future__ import annotations

import time

import pytest

from tests.workflows.bpmn_helpers import (
    T0,
    definitions,
    linear_process,
    messages_of,
    problems_of,
    script_process,
)
from workflows import CompileOptions, Runtime
from workflows.documents import document_text, text_bytes


def steps(count: int, prefix: str = "", tag: str = "task", last: str = "") -> str:
    """start -> t0 -> ... -> t<count-1> [-> `last`, an element with id `<prefix>last`] -> end."""
    parts = [f'<bpmn:startEvent id="{prefix}start" />']
    previous = f"{prefix}start"
    ids = [f"{prefix}t{n}" for n in range(count)]
    elements = [f'<bpmn:{tag} id="{i}" />' for i in ids]
    if last:
        ids.append(f"{prefix}last")
        elements.append(last)
    for n, (element_id, element) in enumerate(zip(ids, elements, strict=True)):
        parts.append(f'<bpmn:sequenceFlow id="{prefix}f{n}" sourceRef="{previous}" '
                     f'targetRef="{element_id}" />{element}')
        previous = element_id
    parts.append(f'<bpmn:sequenceFlow id="{prefix}f_end" sourceRef="{previous}" '
                 f'targetRef="{prefix}end" /><bpmn:endEvent id="{prefix}end" />')
    return "".join(parts)


def chain(count: int, process_id: str = "p", tag: str = "task") -> str:
    return (f'<bpmn:process id="{process_id}" isExecutable="true">{steps(count, tag=tag)}'
            "</bpmn:process>")


def calling(process_id: str, targets: list[str]) -> str:
    """A process that calls `targets` one after the other."""
    parts = ['<bpmn:startEvent id="start" />']
    previous = "start"
    for n, target in enumerate(targets):
        parts.append(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{previous}" targetRef="c{n}" />'
                     f'<bpmn:callActivity id="c{n}" calledElement="{target}" />')
        previous = f"c{n}"
    parts.append(f'<bpmn:sequenceFlow id="f_end" sourceRef="{previous}" targetRef="end" />'
                 '<bpmn:endEvent id="end" />')
    return f'<bpmn:process id="{process_id}" isExecutable="true">{"".join(parts)}</bpmn:process>'


def test_long_chain_is_refused_with_a_clear_problem_not_a_recursion_error():
    began = time.perf_counter()
    problems = problems_of({"c.bpmn": definitions(chain(600))})
    assert time.perf_counter() - began < 2
    assert [p.message for p in problems] == [
        "process 'p' is too long to compile: 602 steps in one sequence (counting nested "
        "sub-processes); the limit is 250; move parts into called processes"]
    assert "RecursionError" not in problems[0].message


def test_chain_within_the_limit_compiles_and_runs(wf_runtime):
    long_chain = chain(240, tag="intermediateThrowEvent")
    version = wf_runtime.compile({"c.bpmn": definitions(long_chain)})
    instance, result = wf_runtime.start(version, "p", at=T0)
    assert result.ok and instance.finished


def test_nested_sub_processes_count_towards_the_chain():
    inner = ""
    for depth in range(3):
        inner = steps(90, f"d{depth}_", last=(
            f'<bpmn:subProcess id="d{depth}_last">{inner}</bpmn:subProcess>' if inner else ""))
    body = f'<bpmn:process id="p" isExecutable="true">{inner}</bpmn:process>'
    assert [p.message for p in problems_of({"n.bpmn": definitions(body)})] == [
        "process 'p' is too long to compile: 278 steps in one sequence (counting nested "
        "sub-processes); the limit is 250; move parts into called processes"]


def test_deeply_nested_sub_processes_are_refused():
    nested = '<bpmn:task id="leaf" />'
    for depth in range(7):
        nested = f'<bpmn:subProcess id="sub{depth}">{nested}</bpmn:subProcess>'
    body = linear_process(nested.replace('id="sub6"', 'id="work"', 1)
                          + '<bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />')
    assert ("nests sub-processes 7 deep; the limit is 5"
            in messages_of({"n.bpmn": definitions(body)}))


def test_too_many_processes_are_refused_before_anything_else():
    body = "".join(chain(1, f"p{n}") for n in range(41))
    problems = problems_of({"many.bpmn": definitions(body)})
    assert [p.message for p in problems] == ["the version defines 41 processes; the limit is 40"]


def test_too_many_elements_in_one_process():
    options = CompileOptions(max_elements=100)
    problems = problems_of({"big.bpmn": definitions(chain(60))},
                           Runtime(compile_options=options))
    assert [p.message for p in problems] == [
        "process 'p' has 123 elements; the limit is 100 per process"]


def test_call_graph_size_is_bounded():
    # Each process calls every later one: the engine keeps, per process, all it may call.
    names = [f"p{n}" for n in range(30)]
    body = "".join(calling(name, names[n + 1:n + 4]) for n, name in enumerate(names))
    began = time.perf_counter()
    problems = problems_of({"g.bpmn": definitions(body)})
    assert time.perf_counter() - began < 2
    assert len(problems) == 1
    assert "nested call activities; the limit is 5" in problems[0].message
    wide = "".join(calling(name, names[n + 1:]) for n, name in enumerate(names[:25]))
    wide += "".join(chain(1, name) for name in names[25:])
    roomy = Runtime(compile_options=CompileOptions(max_call_depth=50))
    problems = problems_of({"g.bpmn": definitions(wide)}, roomy)
    assert ["process-to-callee pairs" in p.message for p in problems] == [True]


def test_call_cycle_is_refused():
    body = calling("a", ["b"]) + calling("b", ["c"]) + calling("c", ["a"])
    assert ("processes call each other in a cycle ('a', 'b', 'c')"
            in messages_of({"cycle.bpmn": definitions(body)}))


def test_huge_loop_maximum_is_refused():
    body = linear_process("""
    <bpmn:scriptTask id="work" scriptFormat="python">
      <bpmn:standardLoopCharacteristics loopMaximum="1000000" />
      <bpmn:script>n = 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""")
    assert ("loopMaximum 1000000 is above the limit of 200 runs"
            in messages_of({"l.bpmn": definitions(body)}))


def test_problems_and_their_messages_stay_short():
    # Thousands of calls to unknown processes once listed every process in every message.
    callers = "".join(calling(f"p{n}", [f"missing{n}_{k}" for k in range(20)])
                      for n in range(30))
    problems = problems_of({"x.bpmn": definitions(callers)})
    assert len(problems) == 200
    assert max(len(p.message) for p in problems) < 400
    assert "and 20 more" in problems[0].message


def test_version_size_is_bounded():
    options = CompileOptions(max_version_bytes=10_000)
    files = {f"f{n}.bpmn": script_process("x = 1", f"p{n}") for n in range(20)}
    problems = problems_of(files, Runtime(compile_options=options))
    assert [p.message for p in problems] == [
        f"the files have {sum(map(len, files.values()))} bytes together; the limit is 10000"]


# -- text of scripts and encodings ----------------------------------------------------------


def test_comment_inside_a_script_does_not_drop_the_rest(wf_runtime):
    xml = script_process("x = 1\nMARK\ny = 2").replace(
        b"MARK", b"<!-- the second half used to be lost -->")
    instance, result = wf_runtime.start(wf_runtime.compile({"c.bpmn": xml}), "p", at=T0)
    assert result.ok
    assert (instance.data["x"], instance.data["y"]) == (1, 2)


def test_comment_inside_a_condition_is_read_around(wf_runtime):
    body = linear_process("""
    <bpmn:exclusiveGateway id="work" default="f_no" />
    <bpmn:sequenceFlow id="f_yes" sourceRef="work" targetRef="yes">
      <bpmn:conditionExpression>value &gt; 3 <!-- not before --> and value &lt; 5\
</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:userTask id="yes" />
    <bpmn:sequenceFlow id="f_yes_end" sourceRef="yes" targetRef="end" />
    <bpmn:sequenceFlow id="f_no" sourceRef="work" targetRef="end" />""")
    version = wf_runtime.compile({"g.bpmn": definitions(body)})
    instance, result = wf_runtime.start(version, "p", {"value": 9}, at=T0)
    assert result.ok and instance.finished


def test_element_inside_a_script_is_refused():
    xml = script_process("x = 1\nMARK\ny = 2").replace(b"MARK", b"<b>bold</b>")
    assert ("script: the text contains the XML element <b>; write it as plain text"
            in messages_of({"e.bpmn": xml}))


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "gb18030"])
def test_any_encoding_lxml_reads_compiles_and_becomes_utf8_text(wf_runtime, codec):
    label = codec.upper().removesuffix("-SIG")
    text = script_process("label = '燃气泄漏'").decode().replace(
        'encoding="UTF-8"', f'encoding="{label}"')
    content = text.encode(codec)
    version = wf_runtime.compile({"e.bpmn": content})
    instance, _ = wf_runtime.start(version, "p", at=T0)
    assert instance.data["label"] == "燃气泄漏"
    stored, problems = document_text("e.bpmn", content)
    assert problems == [] and stored is not None
    assert stored.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    again = wf_runtime.compile({"e.bpmn": stored.encode("utf-8")})
    assert again.process_ids == ("p",)


def test_unreadable_encoding_is_a_problem_naming_the_file():
    _, problems = document_text("odd.bpmn", b'<?xml version="1.0" encoding="x-klingon"?><a/>')
    assert [(p.file, "x-klingon" in p.message) for p in problems] == [("odd.bpmn", True)]
    _, problems = document_text("bad.bpmn", b"<a>\xff\xfe</a>")
    assert problems[0].file == "bad.bpmn" and "not well-formed" in problems[0].message


def test_text_with_a_foreign_declaration_or_lone_surrogate_is_a_problem_not_an_error(
        wf_runtime):
    text = script_process("x = 1").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    assert wf_runtime.compile({"t.bpmn": text_bytes(text)}).process_ids == ("p",)
    broken = text.replace("x = 1", "x = '\ud800'")
    assert "not well-formed XML" in messages_of({"t.bpmn": text_bytes(broken)})
