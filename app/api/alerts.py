"""Alert intake for source systems (Art 8): one alert or a batch, authenticated by API key."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from app.api.alert_schemas import (
    AlertBatchResultSchema,
    AlertBatchSchema,
    AlertOutcomeSchema,
    AlertSchema,
)
from app.api.auth import api_key, json_body, load, now
from app.extensions import db
from app.i18n import _l
from app.services import api_keys, feed_intake, feeds, intake, intake_batches
from app.services.errors import DomainError, ValidationFailed
from app.services.intake import AlertIn

bp = Blueprint("alerts", __name__)

# A full batch of small alerts fits easily; anything bigger is refused before it is read.
MAX_BODY_BYTES = 4 * 1024 * 1024


def _per_index(details: dict[str, Any]) -> dict[str, Any]:
    """Batch errors as index -> field -> messages (other keys stay as they are)."""
    items = details.get("alerts")
    if not isinstance(items, dict):
        return details
    return {**{k: v for k, v in details.items() if k != "alerts"}, **items}


def _alerts(data: Any) -> tuple[list[AlertIn], bool]:
    header = request.headers.get("Idempotency-Key")
    if isinstance(data, dict) and "alerts" in data:
        if header is not None:
            raise ValidationFailed(
                _l("The Idempotency-Key header is for a single alert; give each alert of a "
                   "batch its own idempotency_key."),
                details={"Idempotency-Key": [str(_l("Not allowed with a batch."))]})
        try:
            return list(load(AlertBatchSchema(), data)["alerts"]), True
        except ValidationFailed as exc:
            exc.details = _per_index(exc.details)
            raise
    if isinstance(data, dict) and header is not None:
        if data.get("idempotency_key", header) != header:
            raise ValidationFailed(_l("Please correct the marked fields."), details={
                "idempotency_key": [str(_l("Differs from the Idempotency-Key header."))]})
        data = {**data, "idempotency_key": header}
    return [load(AlertSchema(), data)], False


def _refused_index(exc: DomainError, alerts: list[AlertIn]) -> int | None:
    """Which alert of a batch the service refused: it checks them all before writing and
    names the scenario (scope, no handbook) or the indicator it refused."""
    for index, alert in enumerate(alerts):
        if alert.scenario in exc.details.get("scenario", ()):
            return index
        if "indicator" in exc.details:
            try:
                intake.item_for(intake.handbook_for(alert.scenario), alert.indicator)
            except DomainError:
                return index
    return None


@bp.before_request
def _source_system() -> None:
    """Who is calling, before the rate limit (it counts per API key) and the body."""
    api_key()


@bp.post("/alerts")
def receive_alerts() -> tuple[Any, int]:
    """Store one alert or a batch; committed before the answer, so a 2xx means stored."""
    key = api_key()
    alerts, batch = _alerts(json_body(limit=MAX_BODY_BYTES))
    api_keys.check_points(key, [a.point_code for a in alerts])
    if not batch:
        outcomes = [intake.ingest(key, alerts[0], now=now())]
    else:
        try:
            outcomes = intake_batches.ingest_many(key, alerts, now=now())
        except DomainError as exc:
            # The error handler rolls back: none of the batch is stored.
            index = _refused_index(exc, alerts)
            if index is not None:
                exc.details = {str(index): exc.details}
            raise
    feeds.record_seen(key, [(a.point_code, a.observed_at) for a in alerts], now=now())
    db.session.commit()
    status = 200 if all(o.replayed for o in outcomes) else 201
    if batch:
        body = AlertBatchResultSchema().dump({"alerts": [o.to_dict() for o in outcomes]})
    else:
        body = AlertOutcomeSchema().dump(outcomes[0].to_dict())
    return jsonify(body), status


@bp.post("/heartbeats")
def receive_heartbeat() -> tuple[Any, int]:
    """A source system (and, when named, its points) is alive: {"points": [codes]} or {}."""
    key = api_key()
    data = json_body(limit=MAX_BODY_BYTES)
    points = data.get("points", []) if isinstance(data, dict) else None
    if not isinstance(points, list) or len(points) > 10000 or not all(
            isinstance(p, str) and 0 < len(p) <= 80 for p in points):
        raise ValidationFailed(_l("Please correct the marked fields."), details={
            "points": [str(_l("A list of at most 10000 point codes."))]})
    feed_intake.heartbeat(key, points, now=now())
    db.session.commit()
    return jsonify({"points": len(points)}), 202
