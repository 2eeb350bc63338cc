"""Where a problem is shown: the drawn element that holds it, its process and its diagram.

A problem found on something the modeller does not draw (a condition expression, a timer
definition, loop settings, a form field) is pinned on the shape or sequence flow that holds it,
keeping the inner id as `child`; a problem on a process is pinned on the pool that draws it.
Files with several BPMNDiagrams name the one to switch to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TypedDict

from lxml import etree

from .documents import BPMN_NS, CAMUNDA_NS
from .errors import Problem

BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
_B = f"{{{BPMN_NS}}}"
_DI = f"{{{BPMNDI_NS}}}"
_CONTAINERS = {f"{_B}process", f"{_B}subProcess", f"{_B}transaction", f"{_B}adHocSubProcess"}


class Place(TypedDict):
    element: str | None
    child: str | None
    process: str | None
    diagram: str | None


class FileIndex:
    """What pinning needs of one parsed file: drawn ids with their diagram, elements by id,
    the pool of each process."""

    def __init__(self, root: etree._Element):
        self.root = root
        self.drawn: dict[str, str] = {}
        self.diagrams: list[str] = []
        for diagram in root.iter(f"{_DI}BPMNDiagram"):
            diagram_id = diagram.get("id") or ""
            self.diagrams.append(diagram_id)
            for shape in diagram.iter(f"{_DI}BPMNShape", f"{_DI}BPMNEdge"):
                ref = shape.get("bpmnElement")
                if ref:
                    self.drawn.setdefault(ref, diagram_id)
        self.by_id: dict[str, etree._Element] = {}
        for element in root.iter(etree.Element):
            element_id = element.get("id")
            if element_id and str(element.tag).startswith(_B):
                self.by_id.setdefault(element_id, element)
        self.pool: dict[str, str] = {
            p.get("processRef", ""): p.get("id", "") for p in root.iter(f"{_B}participant")
            if p.get("processRef") and p.get("id")}

    def place(self, element: etree._Element) -> Place:
        """element / child / process / diagram for a problem found on `element`."""
        own_id = element.get("id")
        pinned: etree._Element | None = None
        process_id: str | None = None
        flow_node: etree._Element | None = None
        for current in [element, *element.iterancestors()]:
            if not isinstance(current.tag, str):
                continue
            current_id = current.get("id")
            if current.tag == f"{_B}process":
                process_id = current_id
                break
            parent = current.getparent()
            if flow_node is None and parent is not None and parent.tag in _CONTAINERS:
                flow_node = current
            if pinned is None and current_id and current_id in self.drawn \
                    and str(current.tag).startswith(_B):
                pinned = current
        if pinned is None:
            pinned = flow_node
        if pinned is None and process_id is not None and process_id in self.pool:
            return {"element": self.pool[process_id], "child": own_id, "process": process_id,
                    "diagram": self.drawn.get(self.pool[process_id])}
        pinned_id = pinned.get("id") if pinned is not None else None
        if pinned_id is None and element.tag == f"{_B}process":
            process_id = own_id
            pool = self.pool.get(own_id or "")
            return {"element": pool, "child": None, "process": process_id,
                    "diagram": self.drawn.get(pool or "")}
        child = element_id_or_none(element, pinned)
        return {"element": pinned_id, "child": child, "process": process_id,
                "diagram": self.drawn.get(pinned_id or "") if pinned_id else None}


def element_id_or_none(element: etree._Element, pinned: etree._Element | None) -> str | None:
    """The id of the innermost element with one, from `element` up to (not including) the
    pinned one: the child a problem concerns (a timer definition, a loop setting, ...)."""
    for current in [element, *element.iterancestors()]:
        if current is pinned:
            return None
        if current.get("id") and (str(current.tag).startswith(_B)
                                  or current.tag == f"{{{CAMUNDA_NS}}}formField"):
            return current.get("id")
    return None


def pin_on(problem: Problem, index: FileIndex, element: etree._Element) -> Problem:
    return replace(problem, **index.place(element))


def pin(problems: list[Problem], roots: Mapping[str, etree._Element]) -> list[Problem]:
    """`problems` with element/child/process/diagram filled in from the files' trees, where
    a problem names an element id of its file and is not pinned yet."""
    indexes: dict[str, FileIndex] = {}
    pinned: list[Problem] = []
    for problem in problems:
        root = roots.get(problem.file)
        if problem.element is not None or root is None or not problem.element_id:
            pinned.append(problem)
            continue
        index = indexes.get(problem.file)
        if index is None:
            index = indexes[problem.file] = FileIndex(root)
        element = index.by_id.get(problem.element_id)
        pinned.append(pin_on(problem, index, element) if element is not None else problem)
    return pinned
