"""Cheap shape checks of a version's BPMN trees, before anything expensive looks at them.

Building engine specs costs time and memory that grow with the number of processes, their
elements, how they call each other and how deep the engine's parser recurses (about two Python
frames per step of a sequence of tasks, added up through nested sub-processes). A version that
processes call each other in a large graph took minutes and gigabytes to deploy, and a long
chain of tasks ended in a bare RecursionError. Everything here walks the lxml trees once,
without recursion, and reports what exceeds `CompileOptions` with a message that names the
limit and what to change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from .documents import BPMN_NS, BpmnDocument, source_line
from .errors import Problem

if TYPE_CHECKING:
    from .specs import CompileOptions

_B = f"{{{BPMN_NS}}}"
# Elements that hold their own flow of steps (the parser builds a separate spec for each).
_SCOPES = frozenset({f"{_B}subProcess", f"{_B}transaction", f"{_B}adHocSubProcess"})
_NOT_STEPS = frozenset({
    "sequenceFlow", "laneSet", "lane", "flowNodeRef", "childLaneSet", "textAnnotation",
    "association", "group", "dataObject", "dataObjectReference", "dataStoreReference",
    "ioSpecification", "property", "documentation", "extensionElements", "incoming",
    "outgoing",
})


@dataclass
class _Scope:
    """A process or sub-process: its direct steps and the scopes nested in it."""

    element: etree._Element
    steps: int = 0
    children: list[_Scope] = field(default_factory=list)


def _local(tag: object) -> str:
    return tag.split("}", 1)[1] if isinstance(tag, str) and "}" in tag else ""


def _scopes(process: etree._Element) -> tuple[_Scope, int]:
    """The scope tree of `process` and the number of XML elements in it (iteratively)."""
    root = _Scope(process)
    elements = 0
    stack: list[tuple[etree._Element, _Scope]] = [(child, root) for child in process]
    while stack:
        element, scope = stack.pop()
        if not isinstance(element.tag, str):
            continue  # comments
        elements += 1
        inner = scope
        if element.tag.startswith(_B) and element.getparent() is scope.element:
            local = _local(element.tag)
            if local not in _NOT_STEPS and not local.endswith("EventDefinition"):
                scope.steps += 1
            if element.tag in _SCOPES:
                inner = _Scope(element)
                scope.children.append(inner)
        stack.extend((child, inner) for child in element)
    return root, elements


def _chain_cost(root: _Scope) -> tuple[int, int]:
    """(steps on the costliest path through nested scopes, deepest nesting of sub-processes)."""
    cost: dict[int, int] = {}
    depth: dict[int, int] = {}
    order: list[_Scope] = []
    stack = [root]
    while stack:
        scope = stack.pop()
        order.append(scope)
        stack.extend(scope.children)
    for scope in reversed(order):  # children before their parents
        cost[id(scope)] = scope.steps + max((cost[id(c)] for c in scope.children), default=0)
        depth[id(scope)] = 1 + max((depth[id(c)] for c in scope.children), default=0)
    return cost[id(root)], depth[id(root)] - 1


def _calls(process: etree._Element) -> Iterator[etree._Element]:
    return process.iter(f"{_B}callActivity")


class _Report:
    def __init__(self, limit: int):
        self.problems: list[Problem] = []
        self.limit = limit

    def add(self, doc: BpmnDocument, element: etree._Element | None, message: str,
            code: str, **params: object) -> None:
        if len(self.problems) < self.limit:
            self.problems.append(Problem(
                doc.name, element.get("id") if element is not None else None,
                source_line(element) if element is not None else None, message, code=code,
                params={"detail": message, **params}))


def check_structure(documents: Iterable[BpmnDocument], options: CompileOptions
                    ) -> tuple[list[Problem], list[Problem]]:
    """Problems with the size and shape of a version: those that must stop the checks at once
    (sizes: checking further would cost too much) and those to report with the rest."""
    docs = list(documents)
    report = _Report(options.max_problems)
    processes: dict[str, tuple[BpmnDocument, etree._Element]] = {}
    total = 0
    for doc in docs:
        for process in doc.root.iter(f"{_B}process"):
            total += 1
            process_id = process.get("id")
            if process_id and process_id not in processes:
                processes[process_id] = (doc, process)
    if total > options.max_processes:
        report.add(docs[0], None, f"the version defines {total} processes; the limit is "
                                  f"{options.max_processes}", "too_many_processes",
                   count=total, limit=options.max_processes)
        return report.problems, []
    later: list[Problem] = []
    for process_id, (doc, process) in processes.items():
        root, elements = _scopes(process)
        if elements > options.max_elements:
            report.add(doc, process, f"process {process_id!r} has {elements} elements; the "
                                     f"limit is {options.max_elements} per process",
                       "too_many_elements", process_id=process_id, count=elements,
                       limit=options.max_elements)
            continue
        chain, nesting = _chain_cost(root)
        if nesting > options.max_nesting:
            report.add(doc, process, f"process {process_id!r} nests sub-processes {nesting} "
                                     f"deep; the limit is {options.max_nesting}",
                       "nesting_too_deep", process_id=process_id, count=nesting,
                       limit=options.max_nesting)
        if chain > options.max_chain:
            report.add(doc, process, (
                f"process {process_id!r} is too long to compile: {chain} steps in one "
                f"sequence (counting nested sub-processes); the limit is {options.max_chain}; "
                "move parts into called processes"), "chain_too_long", process_id=process_id,
                count=chain, limit=options.max_chain)
        for loop in process.iter(f"{_B}standardLoopCharacteristics"):
            maximum = (loop.get("loopMaximum") or "").strip()
            if maximum.isdigit() and int(maximum) > options.max_loop_maximum:
                later.append(Problem(doc.name, loop.get("id"), source_line(loop), (
                    f"loopMaximum {maximum} is above the limit of {options.max_loop_maximum} "
                    "runs"), code="loop_maximum_too_high",
                    params={"value": maximum, "limit": options.max_loop_maximum}))
    if report.problems:
        return report.problems, []
    graph_size, call_shape = _check_calls(processes, options)
    return graph_size, (later + call_shape)[:options.max_problems]


def _check_calls(processes: dict[str, tuple[BpmnDocument, etree._Element]],
                 options: CompileOptions) -> tuple[list[Problem], list[Problem]]:
    """The size of the graph of call activities between known processes, and its shape
    (cycles, depth)."""
    edges: dict[str, list[str]] = {}
    for process_id, (_, process) in processes.items():
        called = dict.fromkeys(c.get("calledElement") or "" for c in _calls(process))
        edges[process_id] = [t for t in called if t in processes]
    # Kahn's algorithm on the reversed graph gives each process's longest call chain; what
    # remains afterwards lies on a cycle.
    callers: dict[str, list[str]] = {p: [] for p in processes}
    pending = {p: len(targets) for p, targets in edges.items()}
    for process_id, targets in edges.items():
        for target in targets:
            callers[target].append(process_id)
    depth = {p: 0 for p in processes}
    ready = [p for p, n in pending.items() if n == 0]
    done: list[str] = []
    while ready:
        process_id = ready.pop()
        done.append(process_id)
        for caller in callers[process_id]:
            depth[caller] = max(depth[caller], depth[process_id] + 1)
            pending[caller] -= 1
            if pending[caller] == 0:
                ready.append(caller)
    problems: list[Problem] = []
    cyclic = sorted(set(processes) - set(done))
    if cyclic:
        doc, process = processes[cyclic[0]]
        names = ", ".join(repr(p) for p in cyclic[:5]) + (" …" if len(cyclic) > 5 else "")
        problems.append(Problem(doc.name, cyclic[0], source_line(process), (
            f"processes call each other in a cycle ({names}); a handbook cannot call a "
            "process that is already running above it"), code="call_cycle",
            params={"processes": names}))
        return [], problems
    deepest = max(depth, key=lambda p: depth[p], default=None)
    if deepest is not None and depth[deepest] > options.max_call_depth:
        doc, process = processes[deepest]
        problems.append(Problem(doc.name, deepest, source_line(process), (
            f"process {deepest!r} starts a chain of {depth[deepest]} nested call activities; "
            f"the limit is {options.max_call_depth}"), code="call_chain_too_deep",
            params={"process_id": deepest, "count": depth[deepest],
                    "limit": options.max_call_depth}))
        return [], problems
    # The engine keeps, for every process, every process it may call (transitively).
    reach: dict[str, set[str]] = {}
    size = 0
    for process_id in done:  # callees before callers
        found: set[str] = set()
        for target in edges[process_id]:
            found.add(target)
            found |= reach[target]
        reach[process_id] = found
        size += len(found)
        if size > options.max_call_graph:
            doc, process = processes[process_id]
            problems.append(Problem(doc.name, process_id, source_line(process), (
                f"the processes of this version call each other too much (more than "
                f"{options.max_call_graph} process-to-callee pairs, counting indirect "
                "calls); share fewer processes or split the version"),
                code="call_graph_too_large", params={"limit": options.max_call_graph}))
            break
    return problems, []
