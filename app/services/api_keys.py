"""Credentials of source systems (Art 8 feeds): issued once, stored hashed, revocable,
scoped to the scenarios a system may report for."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.i18n import _l
from app.models import ApiKey, MonitoringPoint, NodeKind, PlatformNode, User
from app.services import audit
from app.services.errors import DomainError, Forbidden, NotFound, ValidationFailed
from app.services.permissions import require

SOURCE_TYPES = ("iot", "big_data", "video_ai", "social")
_PREFIX = re.compile(r"[0-9a-f]{8}")


class ApiKeyRefused(DomainError):
    status = 401
    code = "api_key_refused"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once, never stored


def issue(actor: User, *, name: str, source_type: str, scenarios: list[str], now: datetime,
          known_scenarios: set[str], node_codes: list[str] | None = None) -> IssuedKey:
    """A key for scenarios of the issuer's scope (`known_scenarios`), for points anywhere or,
    with `node_codes`, only for points registered in those streets, towns or villages."""
    require(actor, "apikeys.manage")
    nodes = sorted(set(node_codes or []))
    if nodes:
        found = set(db.session.scalars(select(PlatformNode.code).where(
            PlatformNode.code.in_(nodes),
            PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.VILLAGE, NodeKind.LINGANG)))))
        if found != set(nodes):
            raise ValidationFailed(_l("Name streets, towns or villages by their codes."),
                                   details={"node_codes": sorted(set(nodes) - found)})
    if source_type not in SOURCE_TYPES:
        raise ValidationFailed(_l("Unknown source type."),
                               details={"source_type": [f"one of {', '.join(SOURCE_TYPES)}"]})
    unknown = sorted(set(scenarios) - known_scenarios)
    if not scenarios or unknown:
        raise ValidationFailed(_l("Name at least one known scenario."),
                               details={"scenarios": unknown or ["required"]})
    prefix = secrets.token_hex(4)
    secret = f"pk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name.strip()[:120] or prefix, prefix=prefix, key_hash=_digest(secret),
                 source_type=source_type, scenarios=sorted(set(scenarios)),
                 node_codes=nodes or None, created_by_id=actor.id, created_at=now)
    db.session.add(key)
    db.session.flush()
    audit.record(actor=actor, action="apikey.issue", object_type="api_key", object_id=key.id,
                 after={"name": key.name, "prefix": prefix, "scenarios": key.scenarios,
                        "source_type": source_type, "nodes": nodes or None}, at=now)
    return IssuedKey(key, secret)


def revoke(actor: User, key_id: int, *, now: datetime) -> ApiKey:
    require(actor, "apikeys.manage")
    key = db.session.get(ApiKey, key_id)
    if key is None or not set(key.scenarios) & set(_issuable(actor)):
        raise NotFound(_l("No such API key."))
    if key.revoked_at is None:
        key.revoked_at = now
        audit.record(actor=actor, action="apikey.revoke", object_type="api_key",
                     object_id=key.id, before={"revoked": False}, after={"revoked": True},
                     at=now)
    return key


def authenticate(header: str | None, *, now: datetime) -> ApiKey:
    """The key named by an `Authorization: Bearer pk_…` or `X-API-Key` header value."""
    if not header:
        raise ApiKeyRefused(_l("An API key is required (Authorization: Bearer <key>)."),
                            code="api_key_missing")
    secret = header.strip()
    if secret[:7].lower() == "bearer ":
        secret = secret[7:].strip()
    parts = secret.split("_", 2)
    # The prefix is looked up: only what `issue` makes (8 hex digits) reaches the database.
    if len(parts) != 3 or parts[0] != "pk" or not _PREFIX.fullmatch(parts[1]):
        raise ApiKeyRefused(_l("The API key is malformed."), code="api_key_malformed")
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or not hmac.compare_digest(key.key_hash, _digest(secret)):
        raise ApiKeyRefused(_l("The API key is not valid."), code="api_key_invalid")
    if key.revoked_at is not None:
        raise ApiKeyRefused(_l("The API key has been revoked."), code="api_key_revoked")
    # Written at most once a minute: a storm of requests must not queue on this row.
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        key.last_used_at = now
    return key


def _issuable(actor: User) -> list[str]:
    from app.services.scenarios import visible_scenarios

    return visible_scenarios(actor, "apikeys.manage")


def list_keys(actor: User | None = None) -> list[ApiKey]:
    """Every key, or those reporting for a scenario in `actor`'s scope."""
    keys = list(db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))
    if actor is None:
        return keys
    mine = set(_issuable(actor))
    return [k for k in keys if set(k.scenarios) & mine]


def check_points(key: ApiKey, point_codes: list[str]) -> None:
    """A key limited to some towns reports only points registered in them."""
    if not key.node_codes:
        return
    allowed = list(db.session.scalars(select(PlatformNode.path).where(
        PlatformNode.code.in_(key.node_codes))))
    placed: dict[str, str] = {}
    for code, path in db.session.execute(
            select(MonitoringPoint.code, PlatformNode.path)
            .join(PlatformNode, PlatformNode.id == MonitoringPoint.node_id)
            .where(MonitoringPoint.code.in_(sorted(set(point_codes))))).tuples():
        placed[code] = path
    outside = sorted({c for c in point_codes
                      if c not in placed or not any(placed[c].startswith(p) for p in allowed)})
    if outside:
        raise Forbidden(_l("This API key may only report points registered in its streets, "
                           "towns or villages."), code="point_not_allowed",
                        details={"point": outside[:20]})
