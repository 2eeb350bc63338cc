"""Loading the platform tree and departments from `handbooks/org`, and reading the tree."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import func, select

from app.extensions import db
from app.models import Department, NodeKind, PlatformNode
from app.services.errors import NotFound, SeedError

ORG_DIR = Path(__file__).resolve().parents[2] / "handbooks" / "org"

# Art 2: 1 district platform, 7 industry sub-platforms, 15 scenarios, 1 Lingang sub-platform,
# 36 streets and towns, 1523 village micro-platforms.
EXPECTED_COUNTS = {
    NodeKind.DISTRICT: 1, NodeKind.INDUSTRY: 7, NodeKind.SCENARIO: 15, NodeKind.LINGANG: 1,
    NodeKind.TOWN: 36, NodeKind.VILLAGE: 1523,
}


class _DepartmentSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z_]{1,39}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    name_en = fields.String(required=True, validate=validate.Length(min=1, max=120))
    responsibilities = fields.String(required=True, validate=validate.Length(min=1))
    inferred = fields.Boolean(load_default=False)


class _DepartmentsFile(Schema):
    source = fields.String(required=True)
    departments = fields.List(fields.Nested(_DepartmentSchema), required=True,
                              validate=validate.Length(min=1))


class _NodeSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z_.]{1,59}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    name_en = fields.String(required=True, validate=validate.Length(min=1, max=160))
    department = fields.String(required=True)
    inferred = fields.Boolean(load_default=False)
    note = fields.String(load_default="")


class _ScenarioSchema(_NodeSchema):
    parent = fields.String(required=True)


_NAME_PAIR = fields.List(fields.String(validate=validate.Length(min=1)),
                         validate=validate.Length(equal=2))


class _TownsSchema(Schema):
    department = fields.String(required=True)
    streets = fields.List(_NAME_PAIR, required=True)
    towns = fields.List(_NAME_PAIR, required=True)


class _VillagesSchema(Schema):
    total = fields.Integer(required=True, validate=validate.Range(min=0, max=100_000))
    note = fields.String(required=True)


class _PlatformFile(Schema):
    source = fields.String(required=True)
    district = fields.Nested(_NodeSchema, required=True)
    industries = fields.List(fields.Nested(_NodeSchema), required=True)
    scenarios = fields.List(fields.Nested(_ScenarioSchema), required=True)
    lingang = fields.Nested(_NodeSchema, required=True)
    towns = fields.Nested(_TownsSchema, required=True)
    villages = fields.Nested(_VillagesSchema, required=True)


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        out.append(f"{prefix}: {' '.join(messages)}")
    elif isinstance(messages, list):
        for item in messages:
            out += _flatten(item, prefix)
    else:
        out.append(f"{prefix}: {messages}")
    return out


def _read(path: Path, schema: Schema) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeedError(f"{path.name}: file not found at {path}") from None
    except json.JSONDecodeError as exc:
        raise SeedError(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}): "
                        f"{exc.msg}") from None
    try:
        data: dict[str, Any] = schema.load(raw)
    except ValidationError as exc:
        problems = _flatten(exc.messages)
        raise SeedError(f"{path.name}: " + "; ".join(problems),
                        details={"file": path.name, "fields": problems}) from None
    return data


@dataclass(frozen=True)
class NodeSpec:
    code: str
    kind: NodeKind
    name: str
    name_en: str | None
    parent: str | None
    department: str | None
    subdivision: str | None = None
    inferred: bool = False
    generated: bool = False
    note: str = ""


def town_display_name(name: str, subdivision: str) -> str:
    if subdivision == "street":
        return f"{name}街道"
    return name if name.endswith("镇") else f"{name}镇"


def read_org(directory: Path = ORG_DIR) -> tuple[list[dict[str, Any]], list[NodeSpec]]:
    """Validate the seed files and expand them into department rows and node specs.

    Raises SeedError naming the file and field of the first problem; touches no database.
    """
    departments = _read(directory / "departments.json", _DepartmentsFile())["departments"]
    platform = _read(directory / "platform.json", _PlatformFile())
    dept_codes = {d["code"] for d in departments}
    dupes = [c for c, n in Counter(d["code"] for d in departments).items() if n > 1]
    if dupes:
        raise SeedError(f"departments.json: departments.code: duplicate code {dupes[0]!r}")

    def dept(where: str, code: str) -> str:
        if code not in dept_codes:
            raise SeedError(f"platform.json: {where}.department: unknown department {code!r}",
                            details={"file": "platform.json", "field": f"{where}.department"})
        return code

    d = platform["district"]
    specs = [NodeSpec(d["code"], NodeKind.DISTRICT, d["name"], d["name_en"], None,
                      dept("district", d["department"]), note=d["note"])]
    for i, n in enumerate(platform["industries"]):
        specs.append(NodeSpec(n["code"], NodeKind.INDUSTRY, n["name"], n["name_en"], d["code"],
                              dept(f"industries.{i}", n["department"]), inferred=n["inferred"],
                              note=n["note"]))
    known = {s.code for s in specs}
    for i, n in enumerate(platform["scenarios"]):
        if n["parent"] not in known:
            raise SeedError(f"platform.json: scenarios.{i}.parent: unknown node {n['parent']!r}",
                            details={"file": "platform.json", "field": f"scenarios.{i}.parent"})
        specs.append(NodeSpec(f"scenario.{n['code']}", NodeKind.SCENARIO, n["name"], n["name_en"],
                              n["parent"], dept(f"scenarios.{i}", n["department"]),
                              inferred=n["inferred"], note=n["note"]))
    lg = platform["lingang"]
    specs.append(NodeSpec(lg["code"], NodeKind.LINGANG, lg["name"], lg["name_en"], d["code"],
                          dept("lingang", lg["department"])))
    towns = platform["towns"]
    town_dept = dept("towns", towns["department"])
    town_specs: list[NodeSpec] = []
    for subdivision, key in (("street", "streets"), ("town", "towns")):
        for name, name_en in towns[key]:
            town_specs.append(NodeSpec(
                f"town.{len(town_specs) + 1:02d}", NodeKind.TOWN,
                town_display_name(name, subdivision), name_en, d["code"], town_dept,
                subdivision=subdivision))
    specs += town_specs
    total = platform["villages"]["total"]
    if total and not town_specs:
        raise SeedError("platform.json: villages.total: villages need at least one town")
    # The real village list is not public: spread the count evenly, remainder to the first towns.
    base, extra = divmod(total, max(len(town_specs), 1))
    for t_index, town in enumerate(town_specs):
        for n in range(1, base + (1 if t_index < extra else 0) + 1):
            specs.append(NodeSpec(
                f"{town.code}.v{n:03d}", NodeKind.VILLAGE, f"{town.name}居村微平台{n:03d}", None,
                town.code, town_dept, generated=True, note=platform["villages"]["note"]))
    codes = Counter(s.code for s in specs)
    dup = next((c for c, k in codes.items() if k > 1), None)
    if dup:
        raise SeedError(f"platform.json: code {dup!r} is used twice")
    return departments, specs


@dataclass(frozen=True)
class SeedResult:
    created: int
    updated: int
    unchanged: int


def load_org(directory: Path = ORG_DIR) -> SeedResult:
    """Create or update departments and nodes from the seed files; idempotent. Caller commits."""
    departments, specs = read_org(directory)
    created = updated = unchanged = 0
    session = db.session
    existing_depts = {d.code: d for d in session.scalars(select(Department))}
    for row in departments:
        values = {"name": row["name"], "name_en": row["name_en"],
                  "responsibilities": row["responsibilities"], "is_inferred": row["inferred"]}
        dept = existing_depts.get(row["code"])
        if dept is None:
            dept = Department(code=row["code"], **values)
            session.add(dept)
            existing_depts[row["code"]] = dept
            created += 1
        elif _apply(dept, values):
            updated += 1
        else:
            unchanged += 1
    session.flush()

    nodes = {n.code: n for n in session.scalars(select(PlatformNode))}
    for spec in specs:  # parents always come before their children
        parent = nodes[spec.parent] if spec.parent else None
        values = {
            "kind": spec.kind, "name": spec.name, "name_en": spec.name_en,
            "parent_id": parent.id if parent else None,
            "department_id": existing_depts[spec.department].id if spec.department else None,
            "subdivision": spec.subdivision, "is_inferred": spec.inferred,
            "is_generated": spec.generated, "note": spec.note,
        }
        node = nodes.get(spec.code)
        if node is None:
            node = PlatformNode(code=spec.code, **values)
            session.add(node)
            session.flush()
            nodes[spec.code] = node
            created += 1
        elif _apply(node, values):
            updated += 1
        else:
            unchanged += 1
        path = f"{parent.path if parent else '/'}{node.id}/"
        if node.path != path:
            node.path = path
    session.flush()
    return SeedResult(created, updated, unchanged)


def _apply(obj: object, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


@dataclass(frozen=True)
class TreeSummary:
    counts: dict[NodeKind, int]
    expected: dict[NodeKind, int]
    top: list[PlatformNode]
    children: dict[int, list[PlatformNode]]
    villages_per_town: dict[int, int]


def tree_summary() -> TreeSummary:
    """Everything the tree page shows above village level, in three queries."""
    counts = dict.fromkeys(NodeKind, 0)
    for kind, n in db.session.execute(
        select(PlatformNode.kind, func.count()).group_by(PlatformNode.kind)
    ):
        counts[kind] = n
    upper = db.session.scalars(
        select(PlatformNode).where(PlatformNode.kind != NodeKind.VILLAGE).order_by(PlatformNode.id)
    ).all()
    children: dict[int, list[PlatformNode]] = {}
    top: list[PlatformNode] = []
    for node in upper:
        if node.parent_id is None:
            top.append(node)
        else:
            children.setdefault(node.parent_id, []).append(node)
    villages = dict(db.session.execute(
        select(PlatformNode.parent_id, func.count()).where(PlatformNode.kind == NodeKind.VILLAGE)
        .group_by(PlatformNode.parent_id)
    ).tuples().all())
    return TreeSummary(counts, EXPECTED_COUNTS, top, children,
                       {int(k): int(v) for k, v in villages.items() if k is not None})


def get_node(node_id: int) -> PlatformNode:
    node = db.session.get(PlatformNode, node_id)
    if node is None:
        from app.i18n import _l

        raise NotFound(_l("No such platform node."))
    return node


def node_by_code(code: str) -> PlatformNode:
    node = db.session.scalar(select(PlatformNode).where(PlatformNode.code == code))
    if node is None:
        raise NotFound(f"no platform node with code {code!r}")
    return node


def children_of(node: PlatformNode) -> list[PlatformNode]:
    return list(db.session.scalars(
        select(PlatformNode).where(PlatformNode.parent_id == node.id).order_by(PlatformNode.id)
    ))


def ancestors_of(node: PlatformNode) -> list[PlatformNode]:
    ids = [int(p) for p in node.path.strip("/").split("/") if p][:-1]
    if not ids:
        return []
    found = {n.id: n for n in db.session.scalars(
        select(PlatformNode).where(PlatformNode.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def places() -> list[PlatformNode]:
    """The streets and towns and the Lingang sub-platform: where a warning can be bounded."""
    return list(db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.LINGANG))).order_by(PlatformNode.path)))
