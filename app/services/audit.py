"""Writing and checking the append-only, hash-chained audit trail."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text

from app.extensions import db
from app.models import AuditRecord, User

GENESIS = "0" * 64
# Serialises appends on PostgreSQL so two transactions never chain onto the same row.
_CHAIN_LOCK_KEY = 7_220_001


def _digest(prev_hash: str, at: datetime, actor_id: int | None, actor_name: str, action: str,
            object_type: str, object_id: str | None, result: str, before: Any, after: Any,
            remote_addr: str | None) -> str:
    payload = json.dumps(
        [prev_hash, at.isoformat(timespec="microseconds"), actor_id, actor_name, action,
         object_type, object_id, result, before, after, remote_addr],
        ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record(*, actor: User | None, action: str, object_type: str, object_id: object = None,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           result: str = "ok", at: datetime, remote_addr: str | None = None,
           actor_name: str | None = None) -> AuditRecord:
    """Append one audit row chained to the previous one. The caller commits."""
    at = at.astimezone(UTC)
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK_KEY})
    prev = session.scalar(select(AuditRecord.hash).order_by(AuditRecord.id.desc()).limit(1))
    prev_hash = prev or GENESIS
    name = actor.username if actor is not None else (actor_name or "-")
    oid = None if object_id is None else str(object_id)
    row = AuditRecord(
        at=at, actor_id=actor.id if actor is not None else None, actor_name=name,
        action=action, object_type=object_type, object_id=oid, result=result,
        before=before, after=after, remote_addr=remote_addr, prev_hash=prev_hash,
        hash=_digest(prev_hash, at, actor.id if actor else None, name, action, object_type, oid,
                     result, before, after, remote_addr),
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class ChainCheck:
    checked: int
    broken_at: int | None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify_chain(batch: int = 2000) -> ChainCheck:
    """Recompute every hash in order; report the first row whose chain does not hold."""
    prev_hash = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows: Sequence[AuditRecord] = db.session.scalars(
            select(AuditRecord).where(AuditRecord.id > last_id)
            .order_by(AuditRecord.id).limit(batch)
        ).all()
        if not rows:
            return ChainCheck(checked, None)
        for row in rows:
            expected = _digest(prev_hash, row.at, row.actor_id, row.actor_name, row.action,
                               row.object_type, row.object_id, row.result, row.before, row.after,
                               row.remote_addr)
            if row.prev_hash != prev_hash or row.hash != expected:
                return ChainCheck(checked, row.id)
            prev_hash = row.hash
            checked += 1
            last_id = row.id


def list_records(*, page: int = 1, per_page: int = 50, action: str | None = None,
                 actor: str | None = None, object_type: str | None = None,
                 object_id: str | None = None) -> tuple[list[AuditRecord], int]:
    query = select(AuditRecord)
    if object_type:
        query = query.where(AuditRecord.object_type == object_type)
    if object_id:
        query = query.where(AuditRecord.object_id == object_id)
    if action:
        query = query.where(AuditRecord.action == action)
    if actor:
        query = query.where(AuditRecord.actor_name == actor)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(AuditRecord.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return list(rows), total
