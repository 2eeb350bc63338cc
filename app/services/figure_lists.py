"""The lists and series of a report beside its counts: the trend per local day or month,
cases by highest level, alerts by source, scenario and level, data-quality work and the cases
overdue at the end of the period."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, DateTime, and_, bindparam, func, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from app.models import Alert, Case, DataQualityIssue, NodeKind, PlatformNode
from app.services.figure_scope import Period, Scope, at_instant, count_if, dialect, in_period
from app.services.figures import counted, reports_session
from app.timezone import local_zone


def _bucket_starts(unit: str, period: Period) -> list[date]:
    """The local days (or first days of months) the period's buckets start on, then the
    first one after the period: the bounds of every bucket."""
    starts = [period.start if unit == "day" else period.start.replace(day=1)]
    while starts[-1] < period.end:
        last = starts[-1]
        starts.append(last + timedelta(days=1) if unit == "day"
                      else date(last.year + (last.month == 12), last.month % 12 + 1, 1))
    return starts


def _bucket_text(day: date, unit: str) -> str:
    return day.strftime("%Y-%m" if unit == "month" else "%Y-%m-%d")


def _local_bucket(column: Any, unit: str, period: Period, starts: list[date]
                  ) -> ColumnElement[Any]:
    """The local day or month of a moment: on PostgreSQL the bucket's number among the
    bounds (a binary search over a few instants, half the work of converting every row to
    local time); on SQLite its text, shifted by the zone's offset at the period's start
    (SQLite knows no zones)."""
    if dialect() == "postgresql":
        zone = local_zone()
        bounds = [datetime.combine(d, time(), zone).astimezone(UTC) for d in starts]
        return func.width_bucket(column, bindparam(
            "trend_bounds", bounds, type_=ARRAY(DateTime(timezone=True))))
    fmt = "%Y-%m" if unit == "month" else "%Y-%m-%d"
    offset = local_zone().utcoffset(datetime.combine(period.start, time()))
    minutes = int(offset.total_seconds() // 60) if offset else 0
    return func.strftime(fmt, column, f"{minutes:+d} minutes")


def trend(scope: Scope, period: Period) -> list[dict[str, Any]]:
    """Cases opened, closed and false alarms per local day (a month) or month (a year), from
    one aggregate over the cases opened or closed in the period, grouped by both buckets."""
    unit = "day" if period.kind == "month" else "month"
    starts = _bucket_starts(unit, period)
    series: dict[str, dict[str, Any]] = {}

    def add(bucket: Any, counts: dict[str, Any]) -> None:
        # PostgreSQL answers the bucket's number (1 for the first), SQLite its text.
        key = (_bucket_text(starts[bucket - 1], unit) if isinstance(bucket, int)
               else str(bucket))
        entry = series.setdefault(key, {"bucket": key, "opened": 0, "closed": 0,
                                        "false_alarms": 0})
        for name, n in counts.items():
            entry[name] += int(n or 0)

    opened = _local_bucket(Case.opened_at, unit, period, starts)
    closed = _local_bucket(Case.closed_at, unit, period, starts)
    opened_in, closed_in = in_period(Case.opened_at, period), in_period(Case.closed_at, period)
    query = (select(opened, closed, count_if(opened_in), count_if(closed_in),
                    count_if(and_(closed_in, Case.status == "closed")),
                    count_if(and_(closed_in, Case.status == "false_alarm")))
             .where(or_(opened_in, closed_in), scope.condition(), counted())
             .group_by(opened, closed))
    for b_opened, b_closed, n_opened, n_ended, n_closed, n_false in \
            reports_session().execute(query):
        if n_opened:
            add(b_opened, {"opened": n_opened})
        if n_ended:
            add(b_closed, {"closed": n_closed, "false_alarms": n_false})
    return [series[b] for b in sorted(series)]


def levels(scope: Scope, period: Period) -> dict[str, int]:
    """Cases opened in the period by their highest level."""
    query = (select(Case.highest_level, func.count()).where(
        in_period(Case.opened_at, period), scope.condition(), counted())
        .group_by(Case.highest_level))
    return {lv: int(n) for lv, n in reports_session().execute(query)}


def _alert_scope(scope: Scope) -> tuple[ColumnElement[bool], bool]:
    """Alerts reach a scope through their case; a scenario line also through the alert's own
    scenario (alerts that opened nothing: silenced, below threshold). Also says whether the
    case must be joined for it."""
    if scope.kind == NodeKind.DISTRICT.value:
        return true(), False
    if scope.kind in (NodeKind.INDUSTRY.value, NodeKind.SCENARIO.value):
        codes = [c.removeprefix("scenario.") for c in reports_session().scalars(
            select(PlatformNode.code).where(PlatformNode.kind == NodeKind.SCENARIO,
                                            PlatformNode.path.startswith(scope.path,
                                                                         autoescape=True)))]
        return Alert.scenario.in_(codes), False
    return scope.condition(), True


ALERT_DIMENSIONS = ("source", "scenario", "level")


def alerts(scope: Scope, period: Period) -> dict[str, dict[str, int]]:
    """Alerts received in the period by source type, by scenario and by level, in one
    aggregate; alerts of test runs are left out (their cases are few: a hashed anti-join)."""
    level = func.coalesce(Alert.level, "none")
    condition, join_case = _alert_scope(scope)
    uncounted = select(Case.id).where(~counted()).scalar_subquery()
    query = (select(Alert.source_type, Alert.scenario, level, func.count())
             .select_from(Alert)
             .where(in_period(Alert.received_at, period), condition,
                    or_(Alert.case_id.is_(None), Alert.case_id.not_in(uncounted)))
             .group_by(Alert.source_type, Alert.scenario, level))
    if join_case:
        query = query.join(Case, Case.id == Alert.case_id)
    found: dict[str, dict[str, int]] = {d: {} for d in ALERT_DIMENSIONS}
    for source, scenario, lv, n in reports_session().execute(query):
        for dimension, key in zip(ALERT_DIMENSIONS, (source, scenario, lv), strict=True):
            found[dimension][str(key)] = found[dimension].get(str(key), 0) + int(n)
    return found


def quality(scope: Scope, period: Period) -> dict[str, int]:
    """Data-quality issues found in the period, and corrections made in it (Art 9)."""
    session = reports_session()
    base = (select(func.count()).select_from(DataQualityIssue)
            .join(Case, Case.id == DataQualityIssue.case_id)
            .where(scope.condition(), counted()))
    found = session.scalar(base.where(in_period(DataQualityIssue.detected_at, period))) or 0
    corrected = session.scalar(base.where(in_period(DataQualityIssue.resolved_at, period))) or 0
    return {"issues": int(found), "corrected": int(corrected)}


def overdue_cases(scope: Scope, period: Period, *, now: datetime, limit: int = 100
                  ) -> list[dict[str, Any]]:
    """The cases open past their closing deadline at the end of the period (or now), most
    overdue first: the monthly report lists them (Art 9)."""
    as_of = at_instant(min(period.end_utc, now))
    node = aliased(PlatformNode)
    query = (select(Case.case_no, Case.scenario, Case.item_name, Case.level, Case.due_at,
                    node.name)
             .join(node, node.id == Case.node_id)
             .where(counted(), scope.condition(), Case.opened_at < as_of,
                    or_(Case.closed_at.is_(None), Case.closed_at > as_of), Case.due_at < as_of)
             .order_by(Case.due_at, Case.case_no).limit(limit))
    return [{"case_no": no, "scenario": scenario, "item": item, "level": level,
             "due_at": due.isoformat(),
             "due_local": due.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M"), "place": place}
            for no, scenario, item, level, due, place in reports_session().execute(query)]
