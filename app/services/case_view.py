"""What the pages and the API show of one case beyond its row: the handbook measures that
apply, what earlier steps recorded (to pre-fill the next form and to show the verifier), and
the readings of its alerts as a series."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import (
    Alert,
    Attachment,
    Case,
    CaseComment,
    CaseEvent,
    CaseTask,
    HandbookVersion,
    MonitoringPoint,
    User,
)
from app.services.cases import can_act, get_case_by_no, handbook_or_none
from workflows import FormField

# A field that asks again for something an earlier step of another handbook part recorded
# under another name: the closing feedback's arrival time is the disposal's arrival time.
SAME_AS: dict[str, tuple[str, ...]] = {
    "arrived_at": ("on_site_at",),
}
# Fields that list the measures taken start from the measures ticked so far.
MEASURE_FIELDS = frozenset({"measures_taken"})


def measures(case: Case, role: str | None = None) -> list[dict[str, Any]]:
    """The handbook's standard measures that apply to the case's level and item (for one
    lane's `role` when given)."""
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    handbook = handbook_or_none(version) if version else None
    if handbook is None:
        return []
    return [m for m in handbook.data["measures"]
            if (not m.get("levels") or case.level in m["levels"])
            and (not m.get("items") or case.item_code in m["items"])
            and (role is None or m.get("role", "responder") == role)]


def measures_done(case: Case) -> list[str]:
    """Ids of the standard measures recorded as carried out, in the order first ticked."""
    done: list[str] = []
    for data in db.session.scalars(select(CaseEvent.data).where(
            CaseEvent.case_id == case.id, CaseEvent.kind == "comment").order_by(CaseEvent.seq)):
        for measure in (data or {}).get("measures") or []:
            if measure not in done:
                done.append(str(measure))
    return done


def answers(case: Case) -> dict[str, Any]:
    """What people entered in the case's completed forms, the latest answer per field."""
    known: dict[str, Any] = {}
    for data in db.session.scalars(select(CaseEvent.data).where(
            CaseEvent.case_id == case.id, CaseEvent.kind == "task",
            CaseEvent.new_state == "COMPLETED").order_by(CaseEvent.seq)):
        if (data or {}).get("type") != "UserTask":
            continue
        known.update(((data.get("delta") or {}).get("updated")) or {})
    return known


def prefill(case: Case, fields: tuple[FormField, ...], role: str | None = None
            ) -> dict[str, Any]:
    """Values a new form of the case starts from: what earlier steps recorded under the same
    field (or a field it is the same as), and the measures ticked so far."""
    known = answers(case)
    values: dict[str, Any] = {}
    done = measures_done(case)
    texts = {m["id"]: m["text"] for m in measures(case)}
    for f in fields:
        for name in (f.id, *SAME_AS.get(f.id, ())):
            if known.get(name) not in (None, ""):
                values[f.id] = known[name]
                break
        if f.id in MEASURE_FIELDS and f.id not in values and done:
            values[f.id] = "；".join(texts[m] for m in done if m in texts)
    if done:
        values["measure"] = done
    return values


@dataclass(frozen=True)
class Reading:
    at: datetime
    value: float
    level: str | None
    point: str


@dataclass(frozen=True)
class Series:
    """The readings of a case's alerts, oldest first, with the points of a small chart."""

    readings: list[Reading]
    unit: str
    points: str  # "x,y x,y ..." in a 0..width x 0..height box, y up
    width: int = 240
    height: int = 60

    @property
    def low(self) -> float:
        return min(r.value for r in self.readings)

    @property
    def high(self) -> float:
        return max(r.value for r in self.readings)


def readings(case: Case, limit: int = 200) -> Series | None:
    """The last `limit` readings of the case's alerts as a series; None without alerts."""
    rows = list(db.session.execute(
        select(Alert.observed_at, Alert.value, Alert.level, Alert.point_code)
        .where(Alert.case_id == case.id).order_by(Alert.observed_at.desc(), Alert.id.desc())
        .limit(limit)).tuples())
    if not rows:
        return None
    found = [Reading(at, float(value), level, point) for at, value, level, point
             in reversed(rows) if value is not None]
    if not found:
        return None
    width, height = 240, 60
    low, high = min(r.value for r in found), max(r.value for r in found)
    span = high - low
    step = width / max(len(found) - 1, 1)

    def y(value: float) -> float:  # a flat series runs through the middle
        return height / 2 if span == 0 else height - 4 - (value - low) / span * (height - 8)

    points = " ".join(f"{(i * step if len(found) > 1 else width / 2):.1f},{y(r.value):.1f}"
                      for i, r in enumerate(found))
    return Series(found, case.unit or "", points, width, height)


# The schematic map's box (longitude and latitude, WGS-84), as on the risk map: Pudong.
MAP_LON = (121.44, 122.0)
MAP_LAT = (30.84, 31.37)
MAP_WIDTH = 240


@dataclass(frozen=True)
class Place:
    """Where the case's monitoring point is, and a schematic map of it among the towns."""

    point: MonitoringPoint
    town: str  # the street, town or village the point belongs to
    x: float | None  # the point on the map; None while it has no coordinates (or lies outside)
    y: float | None
    towns: list[tuple[str, float, float]]  # name, x, y of each town centre
    width: int
    height: int


def place(case: Case) -> Place | None:
    """The point of the case on a small map; None when the case has no registered point."""
    from app.services import duty_board, org

    point = db.session.get(MonitoringPoint, case.point_id) if case.point_id else None
    if point is None:
        return None
    # Degrees of longitude are shorter than degrees of latitude at 31 degrees north.
    lon_span = (MAP_LON[1] - MAP_LON[0]) * math.cos(math.radians(31.1))
    height = round(MAP_WIDTH * (MAP_LAT[1] - MAP_LAT[0]) / lon_span)

    def xy(lon: float, lat: float) -> tuple[float, float] | None:
        if not (MAP_LON[0] <= lon <= MAP_LON[1] and MAP_LAT[0] <= lat <= MAP_LAT[1]):
            return None
        return (round((lon - MAP_LON[0]) / (MAP_LON[1] - MAP_LON[0]) * MAP_WIDTH, 1),
                round((MAP_LAT[1] - lat) / (MAP_LAT[1] - MAP_LAT[0]) * height, 1))

    centres = duty_board.centroids()["centroids"]
    towns = []
    for node in org.places():
        spot = xy(*centres[node.code]) if node.code in centres else None
        if spot is not None:
            towns.append((node.name, *spot))
    here = xy(point.lon, point.lat) if point.lon is not None and point.lat is not None else None
    return Place(point, point.node.name, here[0] if here else None, here[1] if here else None,
                 towns, MAP_WIDTH, height)


@dataclass(frozen=True)
class CaseView:
    """Everything one case's page (and the API's case detail) shows, for one reader."""

    case: Case
    version: HandbookVersion
    point: MonitoringPoint | None
    tasks: list[CaseTask]  # the ready ones
    can_act: dict[int, bool]  # task id -> may the reader work on it now
    alerts: list[Alert]  # newest first
    comments: list[CaseComment]
    attachments: list[Attachment]
    events: list[CaseEvent]


def case_view(actor: User, case_no: str, *, alerts: int = 200) -> CaseView:
    """One case as `actor` may see it (404/403 otherwise): one set of queries for the page
    and the API."""
    case = get_case_by_no(actor, case_no)
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    assert version is not None
    tasks = list(db.session.scalars(select(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status == "ready").order_by(CaseTask.id)))
    return CaseView(
        case=case, version=version,
        point=db.session.get(MonitoringPoint, case.point_id) if case.point_id else None,
        tasks=tasks, can_act={t.id: can_act(actor, t) for t in tasks},
        alerts=list(db.session.scalars(select(Alert).where(Alert.case_id == case.id).order_by(
            Alert.received_at.desc(), Alert.id.desc()).limit(alerts))),
        comments=list(db.session.scalars(select(CaseComment).where(
            CaseComment.case_id == case.id).order_by(CaseComment.id))),
        attachments=list(db.session.scalars(select(Attachment).where(
            Attachment.case_id == case.id).order_by(Attachment.id))),
        events=list(db.session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id).order_by(CaseEvent.seq))),
    )

