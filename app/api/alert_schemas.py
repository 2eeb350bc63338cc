"""Marshmallow schemas of alert intake (HTTP and MQTT): one alert or a batch as sources send
them, the fast path for the ordinary shape, and what each alert became."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, cast

from flask import current_app
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validates,
    validates_schema,
)

from app.api.schemas import (
    LEVELS,
    MAX_AGE,
    MAX_FUTURE,
    MAX_PAYLOAD_BYTES,
    StrictFloat,
    Timestamp,
    _choice,
    _one_of,
    _text_field,
    clock_now,
    scenario_codes,
)
from app.i18n import _l
from app.services.intake import AlertIn

# ---------------------------------------------------------------- alert intake (input)

class AlertSchema(Schema):
    """One reading or report from a source system."""

    scenario = fields.String(required=True, validate=_choice(scenario_codes),
                             metadata={"choices_of": "scenarios",
                                       "description": "scenario code, e.g. gas"})
    indicator = _text_field(60, spaces=False, required=True, metadata={
        "description": "indicator of a warning item of the scenario's published handbook "
                       "(or the item code), e.g. ch4_lel"})
    point = _text_field(80, spaces=False, required=True, metadata={
        "description": "monitoring point code, e.g. GAS-MH-0001; unknown points are accepted "
                       "and flagged"})
    value = StrictFloat(required=True, metadata={"description": "the reading (finite number)"})
    observed_at = Timestamp(required=True, metadata={
        "description": "when it was measured: ISO 8601 with a time zone, at most 5 minutes "
                       "ahead and 7 days back"})
    level = _one_of(LEVELS, metadata={
        "description": "level set by the source; when absent the handbook thresholds decide"})
    idempotency_key = _text_field(120, metadata={
        "description": "a retry with the same key returns the first outcome; the "
                       "Idempotency-Key header may carry it for a single alert"})
    payload = fields.Dict(keys=fields.String(), metadata={
        "description": "anything else the source wants kept (at most 16 KB as JSON)"})

    @validates("observed_at")
    def _recent(self, value: datetime, **_: Any) -> None:
        now = clock_now()
        if value > now + MAX_FUTURE:
            raise ValidationError(str(_l("More than 5 minutes in the future; check the "
                                         "source's clock and time zone.")))
        if value < now - MAX_AGE:
            raise ValidationError(str(_l("Older than 7 days; such readings are not accepted.")))

    @validates("payload")
    def _small(self, value: dict[str, Any], **_: Any) -> None:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            raise ValidationError(str(_l("Must not contain NaN or infinity."))) from None
        if len(text.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise ValidationError(str(_l("At most 16 KB as JSON.")))

    @post_load
    def _to_alert(self, data: dict[str, Any], **_: Any) -> AlertIn:
        return AlertIn(scenario=data["scenario"], indicator=data["indicator"],
                       point_code=data["point"], value=data["value"],
                       observed_at=data["observed_at"], level=data.get("level"),
                       idempotency_key=data.get("idempotency_key"),
                       payload=data.get("payload"))


class AlertBatchSchema(Schema):
    """Several alerts at once: all are valid and stored, or none is."""

    alerts = fields.List(fields.Nested(AlertSchema), required=True, metadata={
        "description": "1 to MAX_ALERT_BATCH alerts (500 unless configured)"})

    @validates("alerts")
    def _size(self, value: list[Any], **_: Any) -> None:
        most = int(current_app.config["MAX_ALERT_BATCH"])
        if not value:
            raise ValidationError(str(_l("Send at least one alert.")))
        if len(value) > most:
            raise ValidationError(str(_l("At most %(n)d alerts per batch.", n=most)))

    @validates_schema
    def _distinct_keys(self, data: dict[str, Any], **_: Any) -> None:
        seen: set[str] = set()
        problems: dict[int, dict[str, list[str]]] = {}
        for index, alert in enumerate(data.get("alerts", [])):
            key = alert.idempotency_key
            if key is not None and key in seen:
                problems[index] = {"idempotency_key": [
                    str(_l("Used by another alert of the same batch."))]}
            if key is not None:
                seen.add(key)
        if problems:
            raise ValidationError(cast(Any, problems), field_name="alerts")


_ALERT_FIELDS = frozenset(("scenario", "indicator", "point", "value", "observed_at", "level",
                           "idempotency_key", "payload"))
_ALERT_REQUIRED = frozenset(("scenario", "indicator", "point", "value", "observed_at"))


def _plain_text(value: Any, max_length: int, *, spaces: bool = True) -> bool:
    return (type(value) is str and 0 < len(value) <= max_length and bool(value.strip())
            and (spaces or not any(c.isspace() for c in value)))


def quick_alert(data: Any) -> AlertIn | None:
    """The alert `AlertSchema().load(data)` would give, without marshmallow's per-field
    machinery, for the ordinary shape of a feed's message; None for anything else (a wrong
    value, an unusual type), which then takes the schema and gets its per-field errors.

    Feeds send thousands of these a second, and loading one through the schema costs more
    than storing it. It accepts only what the schema accepts (a test compares the two)."""
    if type(data) is not dict or not _ALERT_REQUIRED <= data.keys() <= _ALERT_FIELDS:
        return None
    value, observed, level = data["value"], data["observed_at"], data.get("level")
    key, payload = data.get("idempotency_key"), data.get("payload")
    if not (type(data["scenario"]) is str and data["scenario"] in scenario_codes()
            and _plain_text(data["indicator"], 60, spaces=False)
            and _plain_text(data["point"], 80, spaces=False)
            and (type(value) is float or (type(value) is int and abs(value) < 2 ** 53))
            and math.isfinite(value) and type(observed) is str
            and ("level" not in data or level in LEVELS)
            and ("idempotency_key" not in data or _plain_text(key, 120))
            and ("payload" not in data or type(payload) is dict)):
        return None
    try:
        at = datetime.fromisoformat(observed.strip())
        if at.tzinfo is None or at.utcoffset() is None:
            return None
        at = at.astimezone(UTC)
        if payload is not None:
            text = json.dumps(payload, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":"))
            if len(text.encode("utf-8")) > MAX_PAYLOAD_BYTES or not all(
                    type(k) is str for k in payload):
                return None
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None
    moment = clock_now()
    if not moment - MAX_AGE <= at <= moment + MAX_FUTURE:
        return None
    return AlertIn(scenario=data["scenario"], indicator=data["indicator"],
                   point_code=data["point"], value=float(value), observed_at=at, level=level,
                   idempotency_key=key, payload=dict(payload) if payload is not None else None)


# ---------------------------------------------------------------- alert intake (output)

class AlertOutcomeSchema(Schema):
    alert_id = fields.Integer(metadata={"description": "the stored alert"})
    disposition = fields.String(metadata={
        "enum": ["opened", "grouped", "upgraded", "back_to_normal", "below_threshold",
                 "silenced"]})
    case_no = fields.String(allow_none=True)
    level = fields.String(allow_none=True, metadata={"enum": list(LEVELS)})
    unknown_point = fields.Boolean()
    replayed = fields.Boolean(metadata={"description": "true when an earlier request with "
                                                      "the same idempotency key stored it"})
    step_failed = fields.Boolean(metadata={
        "description": "true when the alert was stored but the case's process step failed on "
                       "it: the case is marked stuck and technical administrators retry it"})
    error = fields.String(allow_none=True, metadata={"description": "why the step failed"})


class AlertBatchResultSchema(Schema):
    alerts = fields.List(fields.Nested(AlertOutcomeSchema))
