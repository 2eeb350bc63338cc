"""Alerts and heartbeats that arrive over a feed (MQTT): through the same intake service and
the same idempotency keys as the HTTP API, set-wise, with refused messages kept as dead
letters for the technical administrators."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, DeadLetter
from app.services import api_keys, feeds, intake_batches
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
    """Store alerts that all carry an idempotency key; one already stored (by an earlier
    delivery, or earlier in this batch) is answered as a replay and not stored again. The keys
    go in with the rows, so plain repeats keep the intake's set-wise path and the unique
    constraint guards them as they are written."""
    assert all(a.idempotency_key for a in alerts)
    api_keys.check_points(key, [a.point_code for a in alerts])
    outcomes = intake_batches.ingest_many(key, alerts, now=now)
    fresh = [(a.point_code, a.observed_at)
             for a, o in zip(alerts, outcomes, strict=True) if not o.replayed]
    if fresh:
        feeds.record_seen(key, fresh, now=now)
    return outcomes


def heartbeat(key: ApiKey, point_codes: list[str], *, now: datetime) -> None:
    """A source (and, when named, its points) is alive. A key limited to some towns speaks
    only for their points: a heartbeat must not end another town's outage."""
    api_keys.check_points(key, point_codes)
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
