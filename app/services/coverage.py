"""Coverage (Art 12): per scenario and town, registered monitoring points against those that
reported in the last day, with the daily trend kept as snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, delete, func, select

from app.extensions import db
from app.models import CoverageSnapshot, MonitoringPoint, PlatformNode
from app.services.scenarios import in_scope

MONITORED_WITHIN = timedelta(days=1)


@dataclass(frozen=True)
class CoverageRow:
    scenario: str
    node_id: int
    town: str
    registered: int
    monitored: int

    @property
    def rate(self) -> float | None:
        return self.monitored / self.registered if self.registered else None


def current(now: datetime, paths: Sequence[str] | None = None) -> list[CoverageRow]:
    """Registered (active, not retired) and monitored (reported within a day) per scenario
    and town."""
    recent = now - MONITORED_WITHIN
    query = (select(MonitoringPoint.scenario, PlatformNode.id, PlatformNode.name, func.count(),
                    func.sum(case((MonitoringPoint.last_seen_at >= recent, 1), else_=0)))
             .join(PlatformNode, PlatformNode.id == MonitoringPoint.node_id)
             .where(MonitoringPoint.active.is_(True), MonitoringPoint.retired_at.is_(None))
             .group_by(MonitoringPoint.scenario, PlatformNode.id, PlatformNode.name)
             .order_by(MonitoringPoint.scenario, PlatformNode.id))
    if paths is not None:
        query = query.where(in_scope(paths, PlatformNode.path))
    return [CoverageRow(s, n, t, int(r), int(m or 0))
            for s, n, t, r, m in db.session.execute(query).tuples()]


def snapshot(now: datetime, day: date) -> int:
    """Keep today's figures (replacing an earlier snapshot of the same day)."""
    rows = current(now)
    db.session.execute(delete(CoverageSnapshot).where(CoverageSnapshot.day == day))
    db.session.add_all([CoverageSnapshot(day=day, scenario=r.scenario, node_id=r.node_id,
                                         registered=r.registered, monitored=r.monitored)
                        for r in rows])
    db.session.flush()
    return len(rows)


def trend(start: date, end: date, *, scenario: str | None = None
          ) -> list[tuple[date, int, int]]:
    """(day, registered, monitored) per day, over the scenario or everything."""
    query = (select(CoverageSnapshot.day, func.sum(CoverageSnapshot.registered),
                    func.sum(CoverageSnapshot.monitored))
             .where(CoverageSnapshot.day >= start, CoverageSnapshot.day <= end)
             .group_by(CoverageSnapshot.day).order_by(CoverageSnapshot.day))
    if scenario:
        query = query.where(CoverageSnapshot.scenario == scenario)
    return [(d, int(r or 0), int(m or 0)) for d, r, m in db.session.execute(query).tuples()]
