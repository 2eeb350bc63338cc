"""Alert intake (Art 8): store every alert, de-duplicate and group repeats into the open
case, honour silences, route new warnings to scenario, handbook version and town."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.i18n import _l
from app.models import (
    LEVEL_RANK,
    Alert,
    ApiKey,
    Case,
    MonitoringPoint,
    PlatformNode,
    Silence,
)
from app.services import cases
from app.services.case_opening import NewCase, open_case
from app.services.errors import DomainError, Forbidden, ValidationFailed
from app.services.handbook_data import Handbook, WarningItem, level_for, recovered
from app.services.handbooks import published_version


@dataclass(frozen=True)
class AlertIn:
    """One validated alert as the API schema hands it over."""

    scenario: str
    indicator: str
    point_code: str
    value: float
    observed_at: datetime
    level: str | None = None
    idempotency_key: str | None = None
    payload: dict[str, Any] | None = None


@dataclass(frozen=True)
class AlertOutcome:
    alert_id: int
    disposition: str
    case_no: str | None
    level: str | None
    unknown_point: bool
    replayed: bool = False
    step_failed: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "disposition": self.disposition,
                "case_no": self.case_no, "level": self.level,
                "unknown_point": self.unknown_point, "replayed": self.replayed,
                "step_failed": self.step_failed, "error": self.error}


def _outcome(alert: Alert, replayed: bool = False, case: Case | None = None,
             now: datetime | None = None) -> AlertOutcome:
    case_no = case.case_no if case is not None else None
    if case_no is None and alert.case_id is not None:
        case_no = db.session.scalar(select(Case.case_no).where(Case.id == alert.case_id))
    # The alert is stored either way; say so when the case's step failed on it.
    failed = (case is not None and now is not None and case.failure is not None
              and case.failure.get("at") == now.isoformat())
    error = None
    if failed and case is not None:
        from app.services.stuck import summary

        error = summary(case.failure)
    return AlertOutcome(alert.id, alert.disposition, case_no, alert.level, alert.unknown_point,
                        replayed, failed, error)


def dedup_key_of(key: ApiKey, point_code: str, indicator: str) -> str:
    """Alerts with the same key group into one open case: same source, point and indicator."""
    return f"{key.source_type}|{point_code}|{indicator}"


def handbook_for(scenario: str) -> Handbook:
    version = published_version(scenario)
    if version is None:
        raise DomainError(_l("No published handbook for this scenario; a department head "
                             "must approve one first."), code="no_published_handbook",
                          status=409, details={"scenario": [scenario]})
    return cases.handbook_of(version)


def item_for(handbook: Handbook, indicator: str) -> WarningItem:
    for item in handbook.warning_items:
        if item.indicator == indicator or item.code == indicator:
            return item
    known = sorted({i.indicator for i in handbook.warning_items})
    raise ValidationFailed(_l("Unknown indicator for this scenario."),
                           details={"indicator": [f"{indicator!r} is not one of "
                                                  f"{', '.join(known)}"]})


def _active_silence(scenario: str, point_code: str, indicator: str,
                    at: datetime) -> Silence | None:
    return db.session.scalar(select(Silence).where(
        Silence.scenario == scenario, Silence.point_code == point_code,
        Silence.starts_at <= at, Silence.ends_at > at, Silence.ended_at.is_(None),
        (Silence.indicator.is_(None)) | (Silence.indicator == indicator)).limit(1))


def _open_case(dedup_key: str) -> Case | None:
    return db.session.scalar(select(Case).where(Case.dedup_key == dedup_key,
                                                Case.status == "open"))


def _earlier(key: ApiKey, idempotency_key: str) -> Alert | None:
    return db.session.scalar(select(Alert).where(
        Alert.api_key_id == key.id, Alert.idempotency_key == idempotency_key))


def ingest(key: ApiKey, incoming: AlertIn, *, now: datetime) -> AlertOutcome:
    """Store one alert and act on it. The caller commits; a 2xx after commit means stored."""
    if incoming.scenario not in key.scenarios:
        raise Forbidden(_l("This API key may not report for this scenario."),
                        code="scenario_not_allowed", details={"scenario": [incoming.scenario]})
    if not incoming.idempotency_key:
        return _ingest(key, incoming, now)
    earlier = _earlier(key, incoming.idempotency_key)
    if earlier is not None:
        return _outcome(earlier, replayed=True)
    try:
        with db.session.begin_nested():
            return _ingest(key, incoming, now)
    except IntegrityError:
        # The same retry arrived twice at once: the other request stored it first.
        earlier = _earlier(key, incoming.idempotency_key)
        if earlier is None:
            raise
        return _outcome(earlier, replayed=True)


def _ingest(key: ApiKey, incoming: AlertIn, now: datetime) -> AlertOutcome:
    handbook = handbook_for(incoming.scenario)
    item = item_for(handbook, incoming.indicator)
    level = incoming.level or level_for(item, incoming.value)
    point = db.session.scalar(select(MonitoringPoint).where(
        MonitoringPoint.code == incoming.point_code, MonitoringPoint.active.is_(True)))
    dedup_key = dedup_key_of(key, incoming.point_code, item.indicator)
    alert = Alert(
        api_key_id=key.id, idempotency_key=incoming.idempotency_key, received_at=now,
        observed_at=incoming.observed_at, source_type=key.source_type,
        point_code=incoming.point_code, point_id=point.id if point else None,
        scenario=incoming.scenario, item_code=item.code, indicator=item.indicator,
        value=incoming.value, unit=item.unit, level=level, dedup_key=dedup_key,
        disposition="pending", unknown_point=point is None, payload=incoming.payload or {})
    silence = _active_silence(incoming.scenario, incoming.point_code, item.indicator, now)
    if silence is not None:
        alert.disposition, alert.silence_id = "silenced", silence.id
        db.session.add(alert)
        db.session.flush()
        return _outcome(alert)
    case = _open_case(dedup_key)
    if case is not None:
        _group(case, alert, item, now)
    elif level is None or recovered(item, incoming.value):
        alert.disposition = "below_threshold"
    else:
        case = _open_new(incoming, item, level, point, dedup_key, now)
        if case is None:  # another worker opened it a moment ago: group into theirs
            case = _open_case(dedup_key)
            assert case is not None
            _group(case, alert, item, now)
        else:
            alert.disposition = "opened"
        alert.case_id = case.id
    db.session.add(alert)
    db.session.flush()
    return _outcome(alert, case=case, now=now)


def _group(case: Case, alert: Alert, item: WarningItem, now: datetime) -> None:
    """A repeat while the case is open: update the case instead of opening another."""
    alert.case_id = case.id
    case.alert_count += 1
    case.last_value = alert.value
    case.last_seen = max(case.last_seen, alert.observed_at)
    if recovered(item, alert.value):
        alert.disposition = "back_to_normal"
        cases.back_to_normal(case, alert.value, now=now)
    elif alert.level and LEVEL_RANK[alert.level] > LEVEL_RANK.get(case.highest_level, 0):
        alert.disposition = "upgraded"
        cases.raise_level(case, alert.level, alert.value, now=now)
    else:
        alert.disposition = "grouped"


def scenario_node(scenario: str) -> PlatformNode:
    node = db.session.scalar(select(PlatformNode).where(
        PlatformNode.code == f"scenario.{scenario}"))
    assert node is not None, scenario
    return node


def new_case_request(incoming: AlertIn, item: WarningItem, level: str,
                     point: MonitoringPoint | None, scenario_node: PlatformNode,
                     dedup_key: str) -> NewCase:
    """What opening a case for this alert needs to know."""
    return NewCase(
        scenario=incoming.scenario, item_code=item.code, level=level, value=incoming.value,
        observed_at=incoming.observed_at, point_code=incoming.point_code, point=point,
        # An unknown point has no town yet: the scenario's own line takes the case.
        node=point.node if point else scenario_node, scenario_node=scenario_node,
        dedup_key=dedup_key)


def _open_new(incoming: AlertIn, item: WarningItem, level: str,
              point: MonitoringPoint | None, dedup_key: str, now: datetime) -> Case | None:
    request = new_case_request(incoming, item, level, point, scenario_node(incoming.scenario),
                        dedup_key)
    try:
        with db.session.begin_nested():
            return open_case(request, now=now)
    except IntegrityError:
        return None


def silence(actor: Any, *, scenario: str, point_code: str, indicator: str | None,
            starts_at: datetime, ends_at: datetime, reason: str, now: datetime) -> Silence:
    """Silence one point for planned works: bounded in time, with a reason, audited."""
    from datetime import timedelta

    from app.services import audit
    from app.services.permissions import require

    require(actor, "silence.manage", scenario_node(scenario))
    problems: dict[str, list[str]] = {}
    if not reason.strip():
        problems["reason"] = [str(_l("Required."))]
    if ends_at <= starts_at:
        problems["ends_at"] = [str(_l("Must be after the start."))]
    elif ends_at - starts_at > timedelta(days=7):
        problems["ends_at"] = [str(_l("A silence lasts at most 7 days."))]
    if ends_at <= now:
        problems.setdefault("ends_at", []).append(str(_l("Must be in the future.")))
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."), details=problems)
    row = Silence(scenario=scenario, point_code=point_code, indicator=indicator or None,
                  starts_at=starts_at, ends_at=ends_at, reason=reason.strip(),
                  created_by_id=actor.id, created_at=now)
    db.session.add(row)
    db.session.flush()
    audit.record(actor=actor, action="silence.create", object_type="silence", object_id=row.id,
                 after={"scenario": scenario, "point": point_code, "indicator": indicator,
                        "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                        "reason": row.reason}, at=now)
    return row


def end_silence(actor: Any, silence_id: int, *, now: datetime) -> Silence:
    from app.services import audit
    from app.services.errors import NotFound
    from app.services.permissions import require

    row = db.session.get(Silence, silence_id)
    if row is None:
        raise NotFound(_l("No such silence."))
    require(actor, "silence.manage", scenario_node(row.scenario))
    if row.ended_at is None:
        row.ended_at, row.ended_by_id = now, actor.id
        audit.record(actor=actor, action="silence.end", object_type="silence", object_id=row.id,
                     before={"ends_at": row.ends_at.isoformat()},
                     after={"ended_at": now.isoformat()}, at=now)
    return row
