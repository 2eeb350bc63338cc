"""Helpers for the workflows tests: fixture files and small BPMN documents built in code."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from workflows import DefinitionError, Problem, Runtime

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

NAMESPACES = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def definitions(body: str, extra: str = "") -> bytes:
    """A bpmn:definitions document around `body` (one or more processes)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions {NAMESPACES} id="Defs" targetNamespace="http://bpmn.io/schema/bpmn">\n'
        f"{extra}{body}\n</bpmn:definitions>\n"
    ).encode()


def linear_process(inner: str, process_id: str = "p", first: str = "work") -> str:
    """start -> <inner elements starting with `first`, ending in an element flowing to end>."""
    return f"""
  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f_start</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="{first}" />
{inner}
    <bpmn:endEvent id="end" />
  </bpmn:process>"""


def script_process(script: str, process_id: str = "p") -> bytes:
    """start -> script task `work` -> user task `after` -> end."""
    escaped = script.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return definitions(linear_process(f"""
    <bpmn:scriptTask id="work" name="Work" scriptFormat="python">
      <bpmn:script>{escaped}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="after" />
    <bpmn:userTask id="after" name="After" />
    <bpmn:sequenceFlow id="f2" sourceRef="after" targetRef="end" />""", process_id))


def problems_of(files: dict[str, bytes], runtime: Runtime | None = None) -> list[Problem]:
    """The problems reported when compiling `files` (fails the test if it compiles)."""
    try:
        (runtime or Runtime()).compile(files)
    except DefinitionError as exc:
        assert exc.problems, "a DefinitionError must carry problems"
        return exc.problems
    raise AssertionError("the definition was expected to be refused")


def messages_of(files: dict[str, bytes]) -> str:
    return " | ".join(p.message for p in problems_of(files))
