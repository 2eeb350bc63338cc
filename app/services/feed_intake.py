"""Alerts and heartbeats that arrive over a feed (MQTT): through the same intake service and
the same idempotency keys as the HTTP API, set-wise, with refused messages kept as dead
letters for the technical administrators."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update

from app.extensions import db
from app.models import Alert, ApiKey, DeadLetter
from app.services import api_keys, feeds, intake
from app.services.intake import AlertIn, AlertOutcome

PAYLOAD_KEPT = 4000  # characters of a refused payload kept for reading


def derived_key(topic: str, payload: bytes, index: int) -> str:
    """The idempotency key of an alert sent without one: a redelivered message (same topic,
    same bytes) gets the same key, so it is stored once."""
    digest = hashlib.sha256(topic.encode("utf-8") + b"\0" + payload).hexdigest()[:48]
    return f"mqtt:{digest}:{index}"


def key_by_prefix(prefix: str) -> ApiKey | None:
    """The active key a topic names (ROOT/<prefix>/...)."""
    return db.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix,
                                                  ApiKey.revoked_at.is_(None)))


def take_in(key: ApiKey, alerts: list[AlertIn], *, now: datetime) -> list[AlertOutcome]:
    """Store alerts that all carry an idempotency key; one already stored is answered as a
    replay and not stored again. Plain repeats take the intake's set-wise path: the keys are
    written onto their rows afterwards (the unique constraint still guards them)."""
    assert all(a.idempotency_key for a in alerts)
    api_keys.check_points(key, [a.point_code for a in alerts])
    wanted = [a.idempotency_key for a in alerts]
    stored = {row.idempotency_key: row for row in db.session.scalars(select(Alert).where(
        Alert.api_key_id == key.id, Alert.idempotency_key.in_(wanted)))}
    fresh: list[AlertIn] = []
    seen: set[str] = set()
    for alert in alerts:
        assert alert.idempotency_key is not None
        if alert.idempotency_key in stored or alert.idempotency_key in seen:
            continue
        seen.add(alert.idempotency_key)
        fresh.append(alert)
    outcomes: list[AlertOutcome] = []
    if fresh:
        outcomes = intake.ingest_many(key, [replace(a, idempotency_key=None) for a in fresh],
                                      now=now)
        table = cast(Table, Alert.__table__)
        db.session.connection().execute(
            update(table).where(table.c.id == bindparam("b_id"))
            .values(idempotency_key=bindparam("b_key")),
            [{"b_id": o.alert_id, "b_key": a.idempotency_key}
             for o, a in zip(outcomes, fresh, strict=True)])
        feeds.record_seen(key, [(a.point_code, a.observed_at) for a in fresh], now=now)
    replayed = [AlertOutcome(row.id, row.disposition, None, row.level, row.unknown_point,
                             replayed=True) for row in stored.values()]
    return outcomes + replayed


def heartbeat(key: ApiKey, point_codes: list[str], *, now: datetime) -> None:
    """A source (and, when named, its points) is alive."""
    feeds.record_seen(key, [(code, now) for code in point_codes], now=now, heartbeat=True)


def dead_letter(*, topic: str, payload: bytes, reason: str, detail: str, now: datetime,
                key: ApiKey | None = None, channel: str = "mqtt") -> DeadLetter:
    row = DeadLetter(received_at=now, channel=channel, topic=topic[:300],
                     api_key_id=key.id if key else None, reason=reason[:60],
                     detail=detail[:4000],
                     payload=payload.decode("utf-8", "replace")[:PAYLOAD_KEPT])
    db.session.add(row)
    return row


def dead_letters(*, limit: int = 200) -> list[DeadLetter]:
    return list(db.session.scalars(select(DeadLetter).order_by(DeadLetter.id.desc())
                                   .limit(limit)))
