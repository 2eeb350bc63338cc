"""The monitoring-point registry (asset archive, Art 8): search, edit, retire, import from CSV
or XLSX (with a dry run and per-row errors; all rows or none) and export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, literal, select, tuple_

from app.extensions import db
from app.i18n import _l
from app.models import MonitoringPoint, NodeKind, PlatformNode, User
from app.services import audit
from app.services.errors import NotFound, ValidationFailed
from app.services.permissions import require, scope_paths
from app.services.quality import POINT_CODE, PUDONG_LAT, PUDONG_LON, move_to_point
from app.services.scenarios import in_scope, scenario_names
from app.services.text_match import any_contains

VIEW_ACTION, MANAGE_ACTION = "points.view", "points.manage"
DATUMS = ("gcj02", "wgs84")
# The columns of an import or export file, in order (the header row names them).
COLUMNS = ("code", "name", "scenario", "object_type", "town", "address", "lat", "lon", "datum",
           "source_system", "owner_unit", "maintenance_unit", "installed_on",
           "report_interval_s")
EDITABLE = tuple(c for c in COLUMNS if c not in ("code", "scenario"))
MAX_IMPORT_ROWS = 20000
PER_PAGE = 50


@dataclass(frozen=True)
class PointPage:
    points: list[MonitoringPoint]
    total: int
    page: int
    pages: int


def _scoped(actor: User, action: str) -> Any:
    paths = scope_paths(actor, action)
    scenario = db.aliased(PlatformNode)
    return (select(MonitoringPoint).join(PlatformNode, PlatformNode.id == MonitoringPoint.node_id)
            .outerjoin(scenario,
                       scenario.code == literal("scenario.").concat(MonitoringPoint.scenario))
            .where(in_scope(paths, PlatformNode.path, scenario.path)))


def search(actor: User, *, q: str = "", scenario: str | None = None, town: str | None = None,
           retired: bool = False, page: int = 1) -> PointPage:
    """Points in the actor's scope (their town or their scenario), newest code first."""
    require(actor, VIEW_ACTION)
    query = _scoped(actor, VIEW_ACTION)
    if q.strip():
        query = query.where(any_contains(q, MonitoringPoint.code, MonitoringPoint.name,
                                         MonitoringPoint.address))
    if scenario:
        query = query.where(MonitoringPoint.scenario == scenario)
    if town:
        query = query.where(PlatformNode.code == town)
    query = query.where(MonitoringPoint.retired_at.is_not(None) if retired
                        else MonitoringPoint.retired_at.is_(None))
    total = int(db.session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, page), pages)
    points = list(db.session.scalars(query.order_by(MonitoringPoint.code)
                                     .offset((page - 1) * PER_PAGE).limit(PER_PAGE)))
    return PointPage(points, total, page, pages)


def get(actor: User, point_id: int, action: str = VIEW_ACTION) -> MonitoringPoint:
    point = db.session.scalar(_scoped(actor, action).where(MonitoringPoint.id == point_id))
    if point is None:
        raise NotFound(_l("No such monitoring point in your scope."))
    return point


def _towns() -> dict[str, PlatformNode]:
    return {n.code: n for n in db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.VILLAGE, NodeKind.LINGANG))))}


def _text(row: dict[str, Any], name: str, most: int) -> tuple[str, str | None]:
    value = str(row.get(name) or "").strip()
    if len(value) > most:
        return value, str(_l("At most %(n)d characters.", n=most))
    return value, None


def _number(raw: Any) -> float | None:
    if raw is None or str(raw).strip() == "":
        return None
    return float(str(raw).strip())


def clean(row: dict[str, Any], *, towns: dict[str, PlatformNode], scenarios: Sequence[str],
          new: bool) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """One row of the registry checked field by field: (values, problems per field)."""
    out: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}

    def fail(name: str, message: Any) -> None:
        problems.setdefault(name, []).append(str(message))

    if new:
        code = str(row.get("code") or "").strip()
        if not POINT_CODE.match(code):
            fail("code", _l("Letters, digits, _ . - only."))
        out["code"] = code
        scenario = str(row.get("scenario") or "").strip()
        if scenario not in scenarios:
            fail("scenario", _l("Choose one of your scenarios."))
        out["scenario"] = scenario
    for name, most in (("name", 200), ("object_type", 60), ("address", 300),
                       ("source_system", 120), ("owner_unit", 200), ("maintenance_unit", 200)):
        value, problem = _text(row, name, most)
        if problem:
            fail(name, problem)
        out[name] = value
    if not out["name"]:
        fail("name", _l("Required."))
    town = towns.get(str(row.get("town") or "").strip())
    if town is None:
        fail("town", _l("Give the code of a street, town or village, such as town.02."))
    else:
        out["node_id"] = town.id
    for name, bounds in (("lat", PUDONG_LAT), ("lon", PUDONG_LON)):
        try:
            number = _number(row.get(name))
        except ValueError:
            fail(name, _l("Enter a number."))
            continue
        if number is None:
            fail(name, _l("Required."))
        elif not bounds[0] <= number <= bounds[1]:
            fail(name, _l("Must lie within Pudong (%(lo)s-%(hi)s).", lo=bounds[0], hi=bounds[1]))
        out[name] = number
    datum = str(row.get("datum") or "gcj02").strip().lower().replace("-", "")
    if datum not in DATUMS:
        fail("datum", _l("Say which datum: GCJ-02 or WGS-84."))
    out["datum"] = datum
    installed = row.get("installed_on")
    if isinstance(installed, datetime):
        out["installed_on"] = installed.date()
    elif isinstance(installed, date):
        out["installed_on"] = installed
    elif installed is None or str(installed).strip() == "":
        out["installed_on"] = None
    else:
        try:
            out["installed_on"] = date.fromisoformat(str(installed).strip()[:10])
        except ValueError:
            fail("installed_on", _l("Enter a date (YYYY-MM-DD)."))
    try:
        interval = _number(row.get("report_interval_s"))
    except ValueError:
        interval = -1.0
    if interval is not None and (interval != int(interval) or not 10 <= interval <= 7 * 86400):
        fail("report_interval_s", _l("Whole seconds between 10 and 604800, or empty."))
    out["report_interval_s"] = int(interval) if interval is not None and interval >= 0 else None
    return out, problems


def _snapshot(point: MonitoringPoint) -> dict[str, Any]:
    return {c: (getattr(point, c).isoformat() if isinstance(getattr(point, c, None), date)
                else getattr(point, c, None)) for c in COLUMNS if c != "town"} | {
        "town": point.node.code if point.node else None}


def update(actor: User, point_id: int, row: dict[str, Any], *, now: datetime
           ) -> MonitoringPoint:
    point = get(actor, point_id, MANAGE_ACTION)
    require(actor, MANAGE_ACTION)
    values, problems = clean(row, towns=_towns(), scenarios=[point.scenario], new=False)
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."), details=problems)
    before = _snapshot(point)
    for name, value in values.items():
        setattr(point, name, value)
    db.session.flush()
    db.session.refresh(point)
    audit.record(actor=actor, action="point.update", object_type="monitoring_point",
                 object_id=point.id, before=before, after=_snapshot(point), at=now)
    return point


def retire(actor: User, point_id: int, *, now: datetime) -> MonitoringPoint:
    """A retired point is kept with its history; its alerts are stored as unknown again."""
    point = get(actor, point_id, MANAGE_ACTION)
    if point.retired_at is None:
        point.retired_at, point.active = now, False
        audit.record(actor=actor, action="point.retire", object_type="monitoring_point",
                     object_id=point.id, before={"active": True},
                     after={"active": False, "retired_at": now.isoformat()}, at=now)
    return point


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # row, column, message
    dry_run: bool = True
    # What reached intake under the new points' codes while they were unknown, and goes to
    # them (on a dry run: would go).
    alerts_moved: int = 0
    cases_moved: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def read_upload(filename: str, content: bytes) -> list[dict[str, Any]]:
    """Rows of a CSV (UTF-8, with or without BOM) or XLSX file, keyed by the header row."""
    name = filename.lower()
    if name.endswith(".xlsx") or content[:4] == b"PK\x03\x04":
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception:  # openpyxl raises many kinds for a damaged file
            raise ValidationFailed(_l("The file is not a readable XLSX workbook."),
                                   details={"file": [str(_l("Not a readable XLSX workbook."))]}
                                   ) from None
        rows = list(book.worksheets[0].iter_rows(values_only=True))
        book.close()
        if not rows:
            return []
        header = [str(h or "").strip() for h in rows[0]]
        return [dict(zip(header, r, strict=False)) for r in rows[1:]
                if any(v not in (None, "") for v in r)]
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(_l("The CSV file must be UTF-8."),
                               details={"file": [str(_l("Save the CSV as UTF-8."))]}) from None
    return [r for r in csv.DictReader(io.StringIO(text)) if any((v or "").strip()
                                                                for v in r.values())]


def import_rows(actor: User, rows: list[dict[str, Any]], *, dry_run: bool, now: datetime
                ) -> ImportResult:
    """Create or update points by code. Every row is checked first; with any error, or on a
    dry run, nothing is written."""
    require(actor, MANAGE_ACTION)
    result = ImportResult(dry_run=dry_run)
    if len(rows) > MAX_IMPORT_ROWS:
        result.errors.append((0, "file", str(_l("At most %(n)d rows per file.",
                                                n=MAX_IMPORT_ROWS))))
        return result
    if rows and "code" not in rows[0]:
        result.errors.append((1, "code", str(_l("The header row must name the columns: "
                                                 "%(cols)s.", cols=", ".join(COLUMNS)))))
        return result
    mine = set(_visible_scenarios(actor))
    towns = _towns()
    codes = [str(r.get("code") or "").strip() for r in rows]
    existing = {p.code: p for p in db.session.scalars(select(MonitoringPoint).where(
        MonitoringPoint.code.in_(codes)))}
    seen: set[str] = set()
    planned: list[tuple[MonitoringPoint | None, dict[str, Any]]] = []
    for number, (row, code) in enumerate(zip(rows, codes, strict=True), start=2):
        values, problems = clean(row, towns=towns, scenarios=sorted(mine), new=True)
        if code in seen:
            problems.setdefault("code", []).append(str(_l("Appears twice in the file.")))
        seen.add(code)
        point = existing.get(code)
        if point is not None and point.scenario != values.get("scenario"):
            problems.setdefault("scenario", []).append(
                str(_l("The point is registered for another scenario.")))
        for column, messages in problems.items():
            result.errors.extend((number, column, m) for m in messages)
        planned.append((point, values))
    if result.errors:
        return result
    result.created = sum(1 for point, _ in planned if point is None)
    result.updated = len(planned) - result.created
    if dry_run:
        result.alerts_moved, result.cases_moved = _flagged(
            [(v["code"], v["scenario"]) for point, v in planned if point is None])
        return result
    lines = {n.code.removeprefix("scenario."): n for n in db.session.scalars(
        select(PlatformNode).where(PlatformNode.kind == NodeKind.SCENARIO))}
    created: list[MonitoringPoint] = []
    for point, values in planned:
        if point is None:
            line = lines.get(values["scenario"])
            created.append(MonitoringPoint(
                owner_department_id=line.department_id if line else None, active=True,
                **values))
            db.session.add(created[-1])
        else:
            for name, value in values.items():
                setattr(point, name, value)
    db.session.flush()
    moved: dict[str, Any] = {}
    for point in created:  # a point that reported while unknown takes over what it sent
        line = lines.get(point.scenario)
        if line is None or point.node is None:
            continue
        taken = move_to_point(point, point.node, line)
        if taken["alerts_moved"] or taken["cases_moved"]:
            moved[point.code] = taken
            result.alerts_moved += taken["alerts_moved"]
            result.cases_moved += taken["cases_moved"]
    audit.record(actor=actor, action="point.import", object_type="monitoring_point",
                 after={"created": result.created, "updated": result.updated,
                        "codes": codes[:200], "moved": moved}, at=now)
    return result


def _flagged(new: list[tuple[str, str]]) -> tuple[int, list[str]]:
    """The alerts and open cases that reached intake under these (code, scenario) pairs while
    no point was registered for them."""
    if not new:
        return 0, []
    from app.models import Alert, Case

    pairs = tuple_(Alert.point_code, Alert.scenario).in_(new)
    alerts = db.session.scalar(select(func.count()).select_from(Alert).where(
        pairs, Alert.point_id.is_(None))) or 0
    cases = list(db.session.scalars(select(Case.case_no).where(
        tuple_(Case.point_code, Case.scenario).in_(new), Case.status == "open",
        Case.point_id.is_(None)).order_by(Case.case_no)))
    return int(alerts), cases


def _visible_scenarios(actor: User) -> list[str]:
    from app.services.scenarios import visible_scenarios

    return visible_scenarios(actor, MANAGE_ACTION)


def export_rows(actor: User) -> list[dict[str, Any]]:
    points = db.session.scalars(_scoped(actor, VIEW_ACTION).order_by(MonitoringPoint.code))
    return [_snapshot(p) for p in points]


def to_csv(rows: Iterable[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: Excel opens it as UTF-8


def to_xlsx(rows: Iterable[dict[str, Any]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("points")
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([row.get(c) for c in COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def names() -> dict[str, str]:
    return scenario_names()
