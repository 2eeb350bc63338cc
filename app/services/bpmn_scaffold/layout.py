"""Diagram coordinates for a `Process`: grid cells become bounds, flows become orthogonal paths.

Columns run left to right, lanes top to bottom; a lane is as tall as the rows its nodes use. Event
sub-processes are drawn around their children. Paths leave and enter shapes the way bpmn-js
draws them: sideways between tasks, through the top or bottom of gateways and boundary events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .model import Flow, Node, Process

POOL_X = 160.0
POOL_Y = 80.0
LABEL_BAND = 30.0
COL_W = 150.0
ROW_H = 120.0
FIRST_COL_X = POOL_X + LABEL_BAND + 40.0 + COL_W / 2
SUB_PAD_X = 35.0
BOUNDARY_GAP = 50.0
SUB_PAD_Y = 20.0

SIZES = {
    "startEvent": (36.0, 36.0), "endEvent": (36.0, 36.0), "boundaryEvent": (36.0, 36.0),
    "exclusiveGateway": (50.0, 50.0), "parallelGateway": (50.0, 50.0),
    "inclusiveGateway": (50.0, 50.0), "userTask": (100.0, 80.0), "scriptTask": (100.0, 80.0),
    "callActivity": (100.0, 80.0), "reference": (36.0, 50.0),
}
Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def overlaps(self, other: Box) -> bool:
        return (self.x < other.right and other.x < self.right
                and self.y < other.bottom and other.y < self.bottom)


@dataclass
class Diagram:
    pool: Box
    lanes: dict[str, Box]
    shapes: dict[str, Box]
    labels: dict[str, Box] = field(default_factory=dict)
    edges: dict[str, list[Point]] = field(default_factory=dict)


def input_association_id(node_id: str, ref_id: str) -> str:
    return f"DataInputAssociation_{node_id}_{ref_id}"


def output_association_id(node_id: str, ref_id: str) -> str:
    return f"DataOutputAssociation_{node_id}_{ref_id}"


def _cx(col: float) -> float:
    return FIRST_COL_X + col * COL_W


class _Grid:
    def __init__(self, process: Process):
        self.process = process
        rows: dict[str, float] = {lane.id: 1.0 for lane in process.lanes}
        for node in process.nodes:
            if node.lane is not None and node.kind != "boundaryEvent":
                rows[node.lane] = max(rows[node.lane], math.floor(node.row) + 1.0)
        for ref in process.references:
            rows[ref.lane] = max(rows[ref.lane], math.ceil(ref.row + 0.5))
        self.tops: dict[str, float] = {}
        y = POOL_Y
        for lane in process.lanes:
            self.tops[lane.id] = y
            y += rows[lane.id] * ROW_H
        self.heights = {lane.id: rows[lane.id] * ROW_H for lane in process.lanes}
        self.bottom = y

    def cy(self, lane: str, row: float) -> float:
        return self.tops[lane] + (row + 0.5) * ROW_H


def layout(process: Process) -> Diagram:
    grid = _Grid(process)
    shapes: dict[str, Box] = {}
    by_id = {n.id: n for n in process.nodes}
    for node in process.nodes:
        if node.kind in ("boundaryEvent", "subProcess"):
            continue
        lane = _lane_of(node, by_id)
        w, h = SIZES[node.kind]
        w = node.width or w
        shapes[node.id] = Box(_cx(node.col) - w / 2, grid.cy(lane, node.row) - h / 2, w, h)
    for ref in process.references:
        w, h = SIZES["reference"]
        shapes[ref.id] = Box(_cx(ref.col) - w / 2, grid.cy(ref.lane, ref.row) - h / 2, w, h)
    for node in process.nodes:
        if node.kind == "subProcess":
            inner = [shapes[n.id] for n in process.nodes if n.parent == node.id
                     and n.id in shapes]
            inner += [shapes[r.id] for r in process.references if r.parent == node.id]
            left = min(b.x for b in inner) - SUB_PAD_X
            top = min(b.y for b in inner) - SUB_PAD_Y
            right = max(b.right for b in inner) + SUB_PAD_X
            bottom = max(b.bottom for b in inner) + SUB_PAD_Y + 10
            shapes[node.id] = Box(left, top, right - left, bottom - top)
    for node in process.nodes:
        if node.kind == "boundaryEvent":
            assert node.attached_to is not None
            host = shapes[node.attached_to]
            cx = host.x + 20 + node.slot * BOUNDARY_GAP
            shapes[node.id] = Box(cx - 18, host.bottom - 18, 36, 36)
    right = max(b.right for b in shapes.values()) + 60
    pool = Box(POOL_X, POOL_Y, right - POOL_X, grid.bottom - POOL_Y)
    lanes = {lane.id: Box(POOL_X + LABEL_BAND, grid.tops[lane.id], pool.w - LABEL_BAND,
                          grid.heights[lane.id]) for lane in process.lanes}
    diagram = Diagram(pool, lanes, shapes)
    for node in process.nodes:
        if node.kind == "boundaryEvent":
            box = shapes[node.id]
            lines = max(1, math.ceil(len(node.name) / 4))
            diagram.labels[node.id] = Box(box.cx - 24, box.bottom + 4, 48, 14.0 * lines)
        elif node.kind.endswith("Event") or node.kind.endswith("Gateway"):
            box = shapes[node.id]
            lines = max(1, math.ceil(len(node.name) / 7))
            diagram.labels[node.id] = Box(box.cx - 45, box.bottom + 5, 90, 14.0 * lines)
    for flow in process.flows:
        points = _route(flow, shapes[flow.source], shapes[flow.target], by_id, grid)
        diagram.edges[flow.id] = points
        if flow.name:
            diagram.labels[flow.id] = _flow_label(points, len(flow.name),
                                                  below=flow.route in ("over", "under"))
    refs = {r.id: r for r in process.references}
    for node in process.nodes:
        if node.id not in shapes:
            continue
        box = shapes[node.id]
        for ref_id in node.writes:
            shift = 8.0 if ref_id in node.reads else 0.0
            diagram.edges[output_association_id(node.id, ref_id)] = _link(
                box, shapes[ref_id], shift)
        for ref_id in node.reads:
            if ref_id in refs:
                shift = -8.0 if ref_id in node.writes else 0.0
                diagram.edges[input_association_id(node.id, ref_id)] = _link(
                    shapes[ref_id], box, shift)
    return diagram


def _flow_label(points: list[Point], length: int, below: bool = False) -> Box:
    """Above (or below) the first horizontal segment, or beside a purely vertical path."""
    width = max(24.0, 12.0 * length)
    for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
        if abs(y1 - y2) < 1:
            return Box(min(x1, x2) + 6, y1 + 4 if below else y1 - 20, width, 14)
    (x1, y1), (_, y2) = points[0], points[-1]
    return Box(x1 + 6, (y1 + y2) / 2 - 7, width, 14)


def _lane_of(node: Node, by_id: dict[str, Node]) -> str:
    current: Node | None = node
    while current is not None:
        if current.lane is not None:
            return current.lane
        current = by_id.get(current.parent) if current.parent else None
    raise ValueError(f"node {node.id} has no lane")


def _link(source: Box, target: Box, shift: float = 0.0) -> list[Point]:
    """A straight association between the facing borders of two shapes (moved sideways by
    `shift` so a read and a write between the same shapes do not overlap)."""
    if target.y >= source.bottom or target.bottom <= source.y:
        x = (target.cx if source.x <= target.cx <= source.right else source.cx) + shift
        if target.y >= source.bottom:
            return [(x, source.bottom), (x, target.y)]
        return [(x, source.y), (x, target.bottom)]
    y = source.cy + shift
    if target.x >= source.right:
        return [(source.right, y), (target.x, y)]
    return [(source.x, y), (target.right, y)]


def _route(flow: Flow, s: Box, t: Box, by_id: dict[str, Node], grid: _Grid) -> list[Point]:
    source = by_id[flow.source]
    target = by_id[flow.target]
    gateway_source = source.kind.endswith("Gateway")
    gateway_target = target.kind.endswith("Gateway")
    if flow.route in ("over", "under"):
        lane = flow.via_lane or _lane_of(source, by_id)
        y = grid.tops[lane] + (flow.via if flow.via is not None else 0.0) * ROW_H
        start = (s.cx, s.bottom) if y > s.cy else (s.cx, s.y)
        end = (t.cx, t.bottom) if y > t.cy else (t.cx, t.y)
        return [start, (s.cx, y), (t.cx, y), end]
    if flow.route in ("down", "up") or source.kind == "boundaryEvent":
        start = (s.cx, s.bottom) if t.cy > s.cy else (s.cx, s.y)
        if t.x <= s.cx <= t.right:
            return [start, (s.cx, t.y if t.cy > s.cy else t.bottom)]
        end = (t.x, t.cy) if t.x > s.cx else (t.right, t.cy)
        return [start, (s.cx, t.cy), end]
    if flow.route == "enter_top" or flow.route == "enter_bottom":
        end = (t.cx, t.y) if flow.route == "enter_top" else (t.cx, t.bottom)
        return [(s.right, s.cy), (t.cx, s.cy), end]
    if abs(s.cy - t.cy) < 1 and t.x >= s.right:
        return [(s.right, s.cy), (t.x, t.cy)]
    if t.x <= s.cx <= t.right:     # straight above or below
        if t.y >= s.bottom:
            return [(s.cx, s.bottom), (s.cx, t.y)]
        return [(s.cx, s.y), (s.cx, t.bottom)]
    if t.x >= s.right:
        if gateway_source:
            start = (s.cx, s.bottom) if t.cy > s.cy else (s.cx, s.y)
            return [start, (s.cx, t.cy), (t.x, t.cy)]
        if gateway_target:
            end = (t.cx, t.y) if s.cy < t.cy else (t.cx, t.bottom)
            return [(s.right, s.cy), (t.cx, s.cy), end]
        mx = t.x - 25
        return [(s.right, s.cy), (mx, s.cy), (mx, t.cy), (t.x, t.cy)]
    # A path back to the left: below both shapes.
    y = max(s.bottom, t.bottom) + 22
    return [(s.cx, s.bottom), (s.cx, y), (t.cx, y), (t.cx, t.bottom)]
