"""Feed health (Art 8, 13): what each source and point last sent, tallies of readings per hour,
outages of silent points and stopped sources, and the figures built from them (online rate,
completeness, timeliness, accuracy) for the pages and the reports.

Formulas, kept here and nowhere else:
- completeness = readings and heartbeats received ÷ readings expected (period ÷ interval of
  each registered point with an interval that the source has fed);
- timeliness = readings received within FEED_LATE_SECONDS of their observation ÷ readings;
- accuracy = alerts whose case was not closed as a false alarm or device fault ÷ alerts that
  reached a case;
- online rate = 1 − silent point-seconds ÷ expected point-seconds (points with an interval).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import Table, and_, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import (
    Alert,
    ApiKey,
    Case,
    FeedOutage,
    FeedTally,
    MonitoringPoint,
    PlatformNode,
    User,
)
from app.services.permissions import scope_paths
from app.services.scenarios import in_scope

# A source's own "last seen" is written at most this often: a storm must not queue on its row.
_SOURCE_SEEN_EVERY = timedelta(seconds=5)


def _setting(name: str) -> Any:
    return current_app.config[name]


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _upsert_tallies(rows: list[dict[str, Any]]) -> None:
    """Add to the hour's tallies: one statement for the whole batch, on either database."""
    if not rows:
        return
    table = cast(Table, FeedTally.__table__)
    insert = (postgresql.insert if db.session.get_bind().dialect.name == "postgresql"
              else sqlite.insert)
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["hour", "api_key_id", "point_code"],
        set_={"readings": table.c.readings + statement.excluded.readings,
              "late": table.c.late + statement.excluded.late,
              "heartbeats": table.c.heartbeats + statement.excluded.heartbeats})
    db.session.execute(statement, rows)


def record_seen(key: ApiKey, readings: Iterable[tuple[str, datetime]], *, now: datetime,
                heartbeat: bool = False) -> None:
    """A source sent readings (point code, observed at) or heartbeats: the points and the
    source are alive, counted in this hour's tally, and their outages end."""
    late_after = timedelta(seconds=_setting("FEED_LATE_SECONDS"))
    counts: Counter[str] = Counter()
    late: Counter[str] = Counter()
    for code, observed_at in readings:
        counts[code] += 1
        if now - observed_at > late_after:
            late[code] += 1
    if key.last_seen_at is None or now - key.last_seen_at >= _SOURCE_SEEN_EVERY:
        key.last_seen_at = now
    hour = _hour(now)
    _upsert_tallies([{"hour": hour, "api_key_id": key.id, "point_code": code,
                      "readings": 0 if heartbeat else n, "late": late[code],
                      "heartbeats": n if heartbeat else 0} for code, n in sorted(counts.items())])
    codes = sorted(counts)
    if codes:
        db.session.execute(update(MonitoringPoint).where(
            MonitoringPoint.code.in_(codes), MonitoringPoint.active.is_(True))
            .values(last_seen_at=now).execution_options(synchronize_session=False))
    points = select(MonitoringPoint.id).where(MonitoringPoint.code.in_(codes))
    ended = list(db.session.scalars(select(FeedOutage).where(
        FeedOutage.ended_at.is_(None),
        or_(and_(FeedOutage.kind == "source", FeedOutage.api_key_id == key.id),
            FeedOutage.point_id.in_(points)))))
    for outage in ended:
        outage.ended_at = now
    if ended:
        from app.services import outage_cases

        outage_cases.data_returned(ended, now=now)


def _open(outage: FeedOutage, now: datetime) -> None:
    from app.services import outage_cases

    db.session.add(outage)
    db.session.flush()
    outage_cases.open_case(outage, now=now)


@dataclass(frozen=True)
class ScanResult:
    opened: int
    ended: int


def scan(now: datetime) -> ScanResult:
    """Open an outage for every point silent beyond its interval (times the grace factor)
    and every source silent for FEED_SOURCE_SILENT_MINUTES; end those that reported since."""
    factor = _setting("FEED_SILENT_FACTOR")
    open_points = select(FeedOutage.point_id).where(FeedOutage.ended_at.is_(None),
                                                    FeedOutage.point_id.is_not(None))
    opened = 0
    for point in list(db.session.scalars(select(MonitoringPoint).where(
            MonitoringPoint.active.is_(True), MonitoringPoint.retired_at.is_(None),
            MonitoringPoint.report_interval_s.is_not(None),
            MonitoringPoint.id.not_in(open_points)))):
        assert point.report_interval_s is not None
        allowed = timedelta(seconds=point.report_interval_s * factor)
        if point.last_seen_at is not None and now - point.last_seen_at <= allowed:
            continue
        _open(FeedOutage(kind="point", point_id=point.id,
                         silent_since=point.last_seen_at or now, detected_at=now), now)
        opened += 1
    limit = now - timedelta(minutes=_setting("FEED_SOURCE_SILENT_MINUTES"))
    open_sources = select(FeedOutage.api_key_id).where(FeedOutage.ended_at.is_(None),
                                                       FeedOutage.kind == "source")
    for key in list(db.session.scalars(select(ApiKey).where(
            ApiKey.revoked_at.is_(None), ApiKey.last_seen_at.is_not(None),
            ApiKey.last_seen_at < limit, ApiKey.id.not_in(open_sources)))):
        assert key.last_seen_at is not None
        _open(FeedOutage(kind="source", api_key_id=key.id, silent_since=key.last_seen_at,
                         detected_at=now), now)
        opened += 1
    # A point retired or given no interval since its outage opened is no longer silent.
    ended = cast(Any, db.session.execute(update(FeedOutage).where(
        FeedOutage.ended_at.is_(None), FeedOutage.point_id.in_(
            select(MonitoringPoint.id).where(or_(
                MonitoringPoint.retired_at.is_not(None), MonitoringPoint.active.is_(False),
                MonitoringPoint.report_interval_s.is_(None)))))
        .values(ended_at=now).execution_options(synchronize_session=False))).rowcount
    db.session.flush()
    return ScanResult(opened, ended or 0)


@dataclass(frozen=True)
class SilentFeed:
    """One point or source silent now, for the duty board and the feed-health page."""

    kind: str  # point / source
    code: str
    name: str
    scenario: str | None
    town: str | None
    silent_since: datetime
    silent_for: timedelta
    interval_s: int | None
    outage_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "code": self.code, "name": self.name,
                "scenario": self.scenario, "town": self.town,
                "silent_since": self.silent_since.isoformat(),
                "silent_minutes": int(self.silent_for.total_seconds() // 60),
                "interval_s": self.interval_s}


def _paths(scope: User | Sequence[str] | None) -> list[str] | None:
    if scope is None:
        return None
    if isinstance(scope, User):
        return scope_paths(scope, "case.view") + scope_paths(scope, "system.status")
    return list(scope)


def silent_feeds(now: datetime, scope: User | Sequence[str] | None = None
                 ) -> list[SilentFeed]:
    """Points and sources silent now, longest silence first. `scope` (a user, or node paths)
    keeps the points lying in it (by town or by scenario) and the sources reporting for one
    of its scenarios; None: everything."""
    paths = _paths(scope)
    scenario_node = db.aliased(PlatformNode)
    query = (select(FeedOutage, MonitoringPoint, PlatformNode)
             .join(MonitoringPoint, MonitoringPoint.id == FeedOutage.point_id)
             .join(PlatformNode, PlatformNode.id == MonitoringPoint.node_id)
             .outerjoin(scenario_node,
                        scenario_node.code == literal("scenario.").concat(MonitoringPoint.scenario))
             .where(FeedOutage.ended_at.is_(None)))
    if paths is not None:
        query = query.where(in_scope(paths, PlatformNode.path, scenario_node.path))
    found = [SilentFeed("point", p.code, p.name, p.scenario, n.name, o.silent_since,
                        now - o.silent_since, p.report_interval_s, o.id)
             for o, p, n in db.session.execute(query).tuples()]
    visible: set[str] | None = None
    if paths is not None:
        visible = {n.code.removeprefix("scenario.") for n in db.session.scalars(
            select(PlatformNode).where(PlatformNode.code.startswith("scenario."),
                                       in_scope(paths, PlatformNode.path)))}
    for outage, key in db.session.execute(
            select(FeedOutage, ApiKey).join(ApiKey, ApiKey.id == FeedOutage.api_key_id)
            .where(FeedOutage.ended_at.is_(None), FeedOutage.kind == "source")).tuples():
        if visible is not None and not set(key.scenarios) & visible:
            continue
        found.append(SilentFeed("source", key.prefix, key.name, None, None,
                                outage.silent_since, now - outage.silent_since, None,
                                outage.id))
    found.sort(key=lambda f: f.silent_since)
    return found


def silent_summary(now: datetime, scope: User | Sequence[str] | None = None
                   ) -> dict[str, Any]:
    """Counts for a tile: silent points, silent sources, the longest silence in minutes."""
    feeds = silent_feeds(now, scope)
    return {"points": sum(1 for f in feeds if f.kind == "point"),
            "sources": sum(1 for f in feeds if f.kind == "source"),
            "longest_minutes": int(max((f.silent_for for f in feeds),
                                       default=timedelta()).total_seconds() // 60)}


@dataclass
class FeedFigures:
    """Art 8 figures of one source system over a period."""

    api_key_id: int
    source: str
    source_type: str
    readings: int = 0
    heartbeats: int = 0
    late: int = 0
    expected: float = 0.0
    alerts_in_cases: int = 0
    false_alarms: int = 0
    points: int = 0
    silent_seconds: float = 0.0
    expected_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completeness(self) -> float | None:
        if self.expected <= 0:
            return None
        return min(1.0, (self.readings + self.heartbeats) / self.expected)

    @property
    def timeliness(self) -> float | None:
        return None if not self.readings else 1 - self.late / self.readings

    @property
    def accuracy(self) -> float | None:
        if not self.alerts_in_cases:
            return None
        return 1 - self.false_alarms / self.alerts_in_cases

    @property
    def online_rate(self) -> float | None:
        if self.expected_seconds <= 0:
            return None
        return max(0.0, 1 - self.silent_seconds / self.expected_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"api_key_id": self.api_key_id, "source": self.source,
                "source_type": self.source_type, "readings": self.readings,
                "heartbeats": self.heartbeats, "late": self.late,
                "expected": round(self.expected, 1), "points": self.points,
                "completeness": self.completeness, "timeliness": self.timeliness,
                "accuracy": self.accuracy, "online_rate": self.online_rate}


def _overlap(start: datetime, end: datetime, since: datetime, until: datetime | None) -> float:
    return max(0.0, (min(end, until or end) - max(start, since)).total_seconds())


def feed_figures(start: datetime, end: datetime, *, scenario: str | None = None,
                 source_type: str | None = None) -> list[FeedFigures]:
    """Completeness, timeliness, accuracy and online rate per source system in [start, end).
    `scenario` keeps sources reporting for it; `source_type` one of api_keys.SOURCE_TYPES."""
    keys = list(db.session.scalars(select(ApiKey).order_by(ApiKey.id)))
    if scenario:
        keys = [k for k in keys if scenario in k.scenarios]
    if source_type:
        keys = [k for k in keys if k.source_type == source_type]
    figures = {k.id: FeedFigures(k.id, k.name, k.source_type) for k in keys}
    if not figures:
        return []
    ids = list(figures)
    for key_id, readings, late, beats in db.session.execute(
            select(FeedTally.api_key_id, func.sum(FeedTally.readings), func.sum(FeedTally.late),
                   func.sum(FeedTally.heartbeats))
            .where(FeedTally.api_key_id.in_(ids), FeedTally.hour >= _hour(start),
                   FeedTally.hour < end).group_by(FeedTally.api_key_id)).tuples():
        fig = figures[key_id]
        fig.readings, fig.late, fig.heartbeats = int(readings or 0), int(late or 0), \
            int(beats or 0)
    # The points a source feeds: those it has ever reported for, with an expected interval.
    fed = (select(FeedTally.api_key_id, FeedTally.point_code).where(
        FeedTally.api_key_id.in_(ids)).distinct().subquery())
    period = (end - start).total_seconds()
    rows = db.session.execute(
        select(fed.c.api_key_id, MonitoringPoint.id, MonitoringPoint.report_interval_s)
        .join(MonitoringPoint, MonitoringPoint.code == fed.c.point_code)
        .where(MonitoringPoint.report_interval_s.is_not(None),
               MonitoringPoint.retired_at.is_(None))).tuples().all()
    by_point: dict[int, list[int]] = {}
    for key_id, point_id, interval in rows:
        fig = figures[key_id]
        fig.points += 1
        fig.expected += period / max(1, interval or 1)
        fig.expected_seconds += period
        by_point.setdefault(point_id, []).append(key_id)
    if by_point:
        for outage in db.session.scalars(select(FeedOutage).where(
                FeedOutage.point_id.in_(list(by_point)), FeedOutage.silent_since < end,
                or_(FeedOutage.ended_at.is_(None), FeedOutage.ended_at > start))):
            assert outage.point_id is not None
            for key_id in by_point[outage.point_id]:
                figures[key_id].silent_seconds += _overlap(start, end, outage.silent_since,
                                                           outage.ended_at)
    for key_id, status, count in db.session.execute(  # type: ignore[assignment]
            select(Alert.api_key_id, Case.status, func.count())
            .join(Case, Case.id == Alert.case_id)
            .where(Alert.api_key_id.in_(ids), Alert.received_at >= start,
                   Alert.received_at < end, Case.is_test.is_(False))
            .group_by(Alert.api_key_id, Case.status)).tuples():
        if key_id is None:
            continue
        figures[key_id].alerts_in_cases += count
        if status == "false_alarm":
            figures[key_id].false_alarms += count
    return list(figures.values())


@dataclass(frozen=True)
class OnlineRate:
    key: str  # scenario code or town node code
    name: str
    points: int
    silent_now: int
    online_rate: float | None


def online_rates(start: datetime, end: datetime, *, by: str = "scenario",
                 paths: Sequence[str] | None = None) -> list[OnlineRate]:
    """Online rate of registered points with an interval, per scenario or per town."""
    period = (end - start).total_seconds()
    query = (select(MonitoringPoint.id, MonitoringPoint.scenario, PlatformNode.code,
                    PlatformNode.name)
             .join(PlatformNode, PlatformNode.id == MonitoringPoint.node_id)
             .where(MonitoringPoint.report_interval_s.is_not(None),
                    MonitoringPoint.retired_at.is_(None), MonitoringPoint.active.is_(True)))
    if paths is not None:
        query = query.where(in_scope(paths, PlatformNode.path))
    points = db.session.execute(query).tuples().all()
    names = {n.code.removeprefix("scenario."): n.name for n in db.session.scalars(
        select(PlatformNode).where(PlatformNode.code.startswith("scenario.")))}
    group_of = {pid: (sc if by == "scenario" else code) for pid, sc, code, _ in points}
    labels = {(sc if by == "scenario" else code): (names.get(sc, sc) if by == "scenario"
                                                   else town)
              for _, sc, code, town in points}
    silent: dict[str, float] = {}
    silent_now: Counter[str] = Counter()
    if group_of:
        for outage in db.session.scalars(select(FeedOutage).where(
                FeedOutage.point_id.in_(list(group_of)), FeedOutage.silent_since < end,
                or_(FeedOutage.ended_at.is_(None), FeedOutage.ended_at > start))):
            assert outage.point_id is not None
            group = group_of[outage.point_id]
            silent[group] = silent.get(group, 0.0) + _overlap(
                start, end, outage.silent_since, outage.ended_at)
            if outage.ended_at is None:
                silent_now[group] += 1
    totals = Counter(group_of.values())
    return [OnlineRate(g, labels[g], n, silent_now[g],
                       max(0.0, 1 - silent.get(g, 0.0) / (n * period)) if period > 0 else None)
            for g, n in sorted(totals.items())]
