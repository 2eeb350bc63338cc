"""Operations and maintenance (Art 15): maintenance records per point and per system, planned
windows that silence a point's alerts, and the account lifecycle report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select

from app.extensions import db
from app.i18n import _l
from app.models import MaintenanceRecord, MonitoringPoint, PlatformNode, Silence, User
from app.services import audit, points
from app.services.errors import ValidationFailed
from app.services.permissions import require, scope_paths
from app.services.scenarios import in_scope

KINDS = ("planned", "repair", "inspection")
MAX_WINDOW = timedelta(days=7)


def record(actor: User, *, point_code: str | None, system: str, kind: str, performed_by: str,
           starts_at: datetime, ends_at: datetime | None, work: str, result: str,
           now: datetime) -> MaintenanceRecord:
    """Record maintenance work. A planned window on a point silences that point's alerts for
    its duration: they are stored and listed but open no case (audited with the record)."""
    require(actor, points.MANAGE_ACTION)
    problems: dict[str, list[str]] = {}
    point = None
    if point_code:
        point = db.session.scalar(select(MonitoringPoint).where(
            MonitoringPoint.code == point_code.strip()))
        if point is None:
            problems["point_code"] = [str(_l("No such monitoring point."))]
        else:
            point = points.get(actor, point.id, points.MANAGE_ACTION)
    elif not system.strip():
        problems["system"] = [str(_l("Name the point or the system maintained."))]
    if kind not in KINDS:
        problems["kind"] = [str(_l("Choose planned maintenance, repair or inspection."))]
    for name, value in (("performed_by", performed_by), ("work", work)):
        if not value.strip():
            problems[name] = [str(_l("Required."))]
    if ends_at is not None and ends_at <= starts_at:
        problems["ends_at"] = [str(_l("Must be after the start."))]
    if kind == "planned" and point is not None:
        if ends_at is None:
            problems["ends_at"] = [str(_l("A planned window needs its end."))]
        elif ends_at - starts_at > MAX_WINDOW:
            problems["ends_at"] = [str(_l("A maintenance window lasts at most 7 days."))]
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."), details=problems)
    row = MaintenanceRecord(point_id=point.id if point else None, system=system.strip()[:120],
                            kind=kind, performed_by=performed_by.strip()[:120],
                            starts_at=starts_at, ends_at=ends_at, work=work.strip(),
                            result=result.strip(), recorded_by_id=actor.id, recorded_at=now)
    if kind == "planned" and point is not None and ends_at is not None and ends_at > now:
        silence = Silence(scenario=point.scenario, point_code=point.code, indicator=None,
                          starts_at=starts_at, ends_at=ends_at,
                          reason=str(_l("Planned maintenance: %(work)s", work=row.work))[:1000],
                          created_by_id=actor.id, created_at=now)
        db.session.add(silence)
        db.session.flush()
        row.silence_id = silence.id
    db.session.add(row)
    db.session.flush()
    audit.record(actor=actor, action="maintenance.record", object_type="maintenance_record",
                 object_id=row.id, after={
                     "point": point.code if point else None, "system": row.system,
                     "kind": kind, "performed_by": row.performed_by,
                     "starts_at": starts_at.isoformat(),
                     "ends_at": ends_at.isoformat() if ends_at else None,
                     "work": row.work, "result": row.result, "silence": row.silence_id}, at=now)
    return row


def records(actor: User, *, point_id: int | None = None, limit: int = 200
            ) -> list[tuple[MaintenanceRecord, MonitoringPoint | None]]:
    """Maintenance records the actor may see: of points in scope, and of systems."""
    require(actor, points.VIEW_ACTION)
    visible = select(MonitoringPoint.id).where(MonitoringPoint.id.in_(
        points._scoped(actor, points.VIEW_ACTION).with_only_columns(MonitoringPoint.id)))
    query = (select(MaintenanceRecord, MonitoringPoint)
             .outerjoin(MonitoringPoint, MonitoringPoint.id == MaintenanceRecord.point_id)
             .where(or_(MaintenanceRecord.point_id.is_(None),
                        MaintenanceRecord.point_id.in_(visible))))
    if point_id is not None:
        query = query.where(MaintenanceRecord.point_id == point_id)
    return list(db.session.execute(query.order_by(MaintenanceRecord.starts_at.desc())
                                   .limit(limit)).tuples())


@dataclass(frozen=True)
class AccountLine:
    user: User
    reason: str  # dormant / never_logged_in / password_expiring / password_expired
    since: datetime | None
    days: int


def account_lifecycle(actor: User, now: datetime, *, dormant_days: int = 90,
                      warn_days: int = 14) -> list[AccountLine]:
    """Active accounts that have not logged in for `dormant_days` (or never, and are older
    than that), and passwords expiring within `warn_days` or already expired."""
    require(actor, "accounts.view")
    max_age = timedelta(days=current_app.config["PASSWORD_MAX_AGE_DAYS"])
    lines: list[AccountLine] = []
    paths = scope_paths(actor, "accounts.view")
    for user in db.session.scalars(
            select(User).join(PlatformNode, PlatformNode.id == User.home_node_id)
            .where(User.active.is_(True), in_scope(paths, PlatformNode.path))
            .order_by(User.username)):
        if user.last_login_at is None:
            if now - user.created_at > timedelta(days=dormant_days):
                lines.append(AccountLine(user, "never_logged_in", user.created_at,
                                         (now - user.created_at).days))
        elif now - user.last_login_at > timedelta(days=dormant_days):
            lines.append(AccountLine(user, "dormant", user.last_login_at,
                                     (now - user.last_login_at).days))
        expires = user.password_changed_at + max_age
        if expires <= now:
            lines.append(AccountLine(user, "password_expired", expires, (now - expires).days))
        elif expires - now <= timedelta(days=warn_days):
            lines.append(AccountLine(user, "password_expiring", expires, (expires - now).days))
    return lines
