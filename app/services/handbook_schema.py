"""Marshmallow schemas for command handbook files, and the ISO 8601 duration subset they use."""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

LEVELS = ("red", "orange", "yellow", "blue")  # most severe first (DOMAIN.md §5)
ROLES = ("leader_in_charge", "department_head", "business_admin", "responder")
SOURCE_TYPES = ("iot", "big_data", "video_ai", "social")  # Art 8
DISPOSAL_TYPES = ("self", "joint", "report_upward", "verify_then_cancel")
EVIDENCE_KINDS = ("photo", "reading", "document", "location")
FIELD_TYPES = ("string", "text", "long", "enum", "boolean", "datetime", "file")
SOURCES = ("statutory", "standard")
LIMIT_NAMES = ("accept", "on_site", "feedback", "close")
# `due` is a level's closing deadline: `close` when set, else `feedback`.
DEADLINES = ("accept", "on_site", "due")
# The meteorological warning signals 区气象局 publishes (上海市气象灾害预警信号 types); the
# warning publication's `warning_type` choices and each handbook's `weather_warnings` use these.
WEATHER_WARNING_TYPES = ("typhoon", "rainstorm", "snowstorm", "cold_wave", "gale",
                         "thunderstorm_gale", "sandstorm", "high_temperature", "drought",
                         "lightning", "hail", "frost", "fog", "haze", "road_icing")
# Who hears a notice whose lane has nobody in scope, tried in order (see notify.py):
# `town` covers the case's town, `department` the scenario's line, `district` the whole area.
FALLBACK_ROLES = (*ROLES, "district_office")
FALLBACK_SCOPES = ("town", "department", "district")
DEFAULT_FALLBACK_CHAIN = (
    {"role": "business_admin", "scope": "town"},
    {"role": "business_admin", "scope": "department"},
    {"role": "department_head", "scope": "department"},
    {"role": "district_office", "scope": "district"},
)

_DURATION = re.compile(
    r"P(?:([0-9]+)D)?(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?)?")


def parse_duration(text: str) -> timedelta:
    """Parse the `PnDTnHnMnS` subset of ISO 8601 (whole numbers); raise ValueError otherwise."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or text == "P":
        raise ValueError(f"{text!r} is not an ISO 8601 duration of the form PnDTnHnMnS "
                         "(e.g. PT5M, PT1H30M, P3D)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _check_duration(text: str) -> None:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


_IDENT = validate.Regexp(r"^[a-z][a-z0-9_]*$", error="must be a lower-case code (a-z, 0-9, _)")
_duration = partial(fields.String, validate=_check_duration)
_ident = partial(fields.String, validate=_IDENT)
_text = partial(fields.String, validate=validate.Length(min=1))
_count = partial(fields.Integer, required=True, strict=True, validate=validate.Range(min=1))


def _one_of(choices: Iterable[str], **kw: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(tuple(choices)), **kw)


def _levels(**kw: Any) -> fields.List:
    return fields.List(_one_of(LEVELS), validate=validate.Length(min=1), **kw)


def _unique(key: str) -> Callable[[list[dict[str, Any]]], None]:
    def check(rows: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        problems: dict[int, dict[str, list[str]]] = {}
        for index, row in enumerate(rows):
            if row[key] in seen:
                problems[index] = {key: [f"duplicate {key} {row[key]!r}"]}
            seen.add(row[key])
        if problems:
            raise ValidationError(problems)
    return check


def _many(schema: Any, key: str | None = "id") -> fields.List:
    rules = [validate.Length(min=1)] + ([_unique(key)] if key else [])
    return fields.List(fields.Nested(schema), required=True, validate=rules)


def _some(schema: Any, key: str | None = "id") -> fields.List:
    return fields.List(fields.Nested(schema), load_default=list,
                       validate=_unique(key) if key else None)


def _per_level(name: str, make: Any) -> type[Schema]:
    # Explicit level keys rather than a Dict field, so errors read `time_limits.red.accept`.
    return Schema.from_dict({level: make() for level in LEVELS}, name=name)


# Escalation condition code -> its parameters. Conditions stay data: the case engine evaluates
# them; here only their shape is checked.
_CONDITION_PARAMS: dict[str, dict[str, Any]] = {
    "level_reached": {"levels": _levels(required=True)},
    "units_involved": {"min": _count()},
    "towns_involved": {"min": _count()},
    "departments_involved": {"min": _count()},
    "casualties": {"min": _count()},
    "help_requested": {},
    "readings_rising": {"consecutive": _count()},
    "spread": {"min_points": _count()},
    "weather_warning_upgraded": {"min_level": _one_of(LEVELS, required=True)},
    "deadline_passed": {"deadline": _one_of(DEADLINES, required=True),
                        "after": _duration(required=True)},
}
CONDITIONS = {code: Schema.from_dict(params, name=f"Params_{code}")
              for code, params in _CONDITION_PARAMS.items()}


class _Marked(Schema):
    """A value that may be an inferred default (`default`) or fixed by law or standard."""

    default = fields.Boolean(load_default=False)
    source = _one_of(SOURCES, load_default=None)
    basis = fields.String(load_default="")

    @validates_schema
    def _default_or_source(self, data: dict[str, Any], **_: Any) -> None:
        if data["default"] and data["source"]:
            raise ValidationError("an inferred default cannot also have a source", "source")


class _Threshold(_Marked):
    value = fields.Float(required=True, allow_nan=False)


class _DurationRule(_Marked):
    rule = _one_of(("instant", "sustained"), required=True)
    seconds = fields.Integer(load_default=None, validate=validate.Range(min=1))

    @validates_schema
    def _seconds(self, data: dict[str, Any], **_: Any) -> None:
        if (data["rule"] == "sustained") != (data["seconds"] is not None):
            raise ValidationError("a sustained rule needs seconds; an instant one has none",
                                  "seconds")


class _Disposal(_Marked):
    by_level = fields.Nested(_per_level("DisposalLevels", lambda: _one_of(DISPOSAL_TYPES)),
                             required=True)


class _Deadline(_Marked):
    duration = _duration(required=True)
    start = _one_of(("push", "accept"), required=True, data_key="from")


class _FormField(Schema):
    id = fields.String(required=True, validate=[_IDENT, validate.NoneOf(keyword.kwlist)])
    label = _text(required=True)
    type = _one_of(FIELD_TYPES, required=True)
    required = fields.Boolean(load_default=False)
    values = fields.List(fields.Nested(Schema.from_dict(
        {"id": _ident(required=True), "name": _text(required=True)}, name="Option")),
        load_default=None)

    @validates_schema
    def _values(self, data: dict[str, Any], **_: Any) -> None:
        if data["type"] == "enum" and not data["values"]:
            raise ValidationError("an enum field needs values", "values")
        if data["type"] != "enum" and data["values"] is not None:
            raise ValidationError("only an enum field has values", "values")


class _TimeLimits(Schema):
    accept = _duration(required=True)
    on_site = _duration(required=True, allow_none=True)
    feedback = _duration(load_default=None)
    close = _duration(load_default=None)
    default = fields.Boolean(load_default=False)
    overrides = fields.Dict(keys=_one_of(LIMIT_NAMES), load_default=dict, values=fields.Nested(
        Schema.from_dict({"source": _one_of(SOURCES, required=True),
                          "basis": _text(required=True)}, name="Override")))

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data["feedback"] is None and data["close"] is None:
            raise ValidationError("set feedback or close (the closing deadline)", "close")
        for key in ("on_site", "feedback", "close"):
            if data[key] and parse_duration(data[key]) < parse_duration(data["accept"]):
                raise ValidationError(f"{data[key]} is shorter than the accept limit", key)
        for key in data["overrides"]:
            if data[key] is None:
                raise ValidationError(f"overrides {key}, which is not set", "overrides")


class _Condition(Schema):
    code = _one_of(CONDITIONS, required=True)
    description = _text(required=True)
    params = fields.Dict(keys=fields.String(), load_default=dict)
    default = fields.Boolean(load_default=False)

    @validates_schema
    def _params(self, data: dict[str, Any], **_: Any) -> None:
        problems = CONDITIONS[data["code"]]().validate(data["params"])
        if problems:
            raise ValidationError(problems, "params")


_WarningItem = Schema.from_dict({
    "code": fields.String(required=True, validate=validate.Regexp(
        r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+$", error="must look like GAS-CH4-MANHOLE")),
    "name": _text(required=True), "object_type": _ident(required=True),
    "indicator": _ident(required=True), "unit": fields.String(required=True),
    "source_types": fields.List(_one_of(SOURCE_TYPES), required=True,
                                validate=validate.Length(min=1)),
    "direction": _one_of(("above", "below"), required=True),
    # Whether reaching a threshold counts (>=, <=) or only passing it (>, <): O2 < 19.5 %.
    "inclusive": fields.Boolean(load_default=True),
    "thresholds": fields.Nested(_per_level("Thresholds", lambda: fields.Nested(_Threshold)),
                                required=True),
    "duration": fields.Nested(_DurationRule, required=True),
    "back_to_normal": fields.Nested(_Threshold, required=True),
    "note": fields.String(load_default=""),
}, name="WarningItem")
_Target = Schema.from_dict({
    "role": _one_of(ROLES, required=True),
    "department": fields.String(load_default=None),  # None: the owner department
    "levels": _levels(load_default=None),  # None: every level
}, name="Target")
_FallbackStep = Schema.from_dict({
    "role": _one_of(FALLBACK_ROLES, required=True),
    "scope": _one_of(FALLBACK_SCOPES, required=True),
}, name="FallbackStep")


class _Fallback(_Marked):
    chain = fields.List(fields.Nested(_FallbackStep), required=True,
                        validate=validate.Length(min=1))


class _WeatherWarning(_Marked):
    type = _one_of(WEATHER_WARNING_TYPES, required=True)


_Responsibility = Schema.from_dict({
    "responders": fields.Nested(Schema.from_dict({
        "scope": _one_of(("town", "scenario"), required=True),
        "department": fields.String(load_default=None), "note": fields.String(load_default=""),
    }, name="Responders"), required=True),
    "notify": fields.Nested(Schema.from_dict(
        {"push": _many(_Target, None)} | {step: _some(_Target, None)
                                    for step in ("accept", "dispose", "cancel", "feedback")},
        name="Notify"), required=True),
    "joint_departments": fields.List(fields.String(), load_default=list),
    # Absent: DEFAULT_FALLBACK_CHAIN.
    "fallback": fields.Nested(_Fallback, load_default=None),
    "default": fields.Boolean(load_default=False), "note": fields.String(load_default=""),
}, name="Responsibility")
_LadderStep = Schema.from_dict({
    "id": _ident(required=True),
    "action": _one_of(("remind", "supervise", "track"), required=True),
    "to": fields.List(_one_of(ROLES), required=True, validate=validate.Length(min=1)),
    "after": _duration(required=True),  # counted from the missed deadline
    "repeat_every": _duration(load_default=None),
}, name="LadderStep")
_Ladder = Schema.from_dict({
    "missed_accept": _many(_LadderStep), "overdue_not_closed": _many(_LadderStep),
    "default": fields.Boolean(load_default=False),
}, name="Ladder")
_Measure = Schema.from_dict({
    "id": _ident(required=True), "text": _text(required=True),
    "levels": _levels(load_default=None), "items": fields.List(fields.String(), load_default=None),
    "role": _one_of(ROLES, load_default="responder"), "default": fields.Boolean(load_default=False),
}, name="Measure")
_Cancellation = Schema.from_dict({
    "causes": _many(Schema.from_dict({
        "code": _ident(required=True), "name": _text(required=True),
        "evidence": fields.List(_one_of(EVIDENCE_KINDS), load_default=list),
    }, name="Cause"), "code"),
    "criteria": _many(Schema.from_dict({
        "id": _ident(required=True), "text": _text(required=True),
        "default": fields.Boolean(load_default=False),
    }, name="Criterion")),
    "evidence": fields.List(_one_of(EVIDENCE_KINDS), required=True,
                            validate=validate.Length(min=1)),
    "default": fields.Boolean(load_default=False),
}, name="Cancellation")
_SpecialStep = Schema.from_dict({
    "id": _ident(required=True), "name": _text(required=True),
    "role": _one_of(ROLES, required=True), "levels": _levels(load_default=None),
    "items": fields.List(fields.String(), load_default=None),
    "deadline": fields.Nested(_Deadline, load_default=None), "form": _some(_FormField),
}, name="SpecialStep")
_Handbook = Schema.from_dict({
    "scenario": _ident(required=True), "name": _text(required=True),
    "basis": fields.String(load_default=""), "owner_department": fields.String(required=True),
    "process_id": fields.String(required=True),
    "object_types": _many(Schema.from_dict(
        {"code": _ident(required=True), "name": _text(required=True)}, name="ObjectType"), "code"),
    "warning_items": _many(_WarningItem, "code"),
    "responsibility": fields.Nested(_Responsibility, required=True),
    "disposal_type": fields.Nested(_Disposal, required=True),
    "time_limits": fields.Nested(_per_level("Limits", lambda: fields.Nested(_TimeLimits)),
                                 required=True),
    "escalation_ladder": fields.Nested(_per_level("Ladders", lambda: fields.Nested(_Ladder)),
                                       required=True),
    "measures": _many(_Measure),
    "cancellation": fields.Nested(_Cancellation, required=True),
    "feedback_fields": _many(_FormField),
    "escalation": fields.Nested(Schema.from_dict(
        {"medium_loop": _many(_Condition, "code"), "big_loop": _many(_Condition, "code")},
        name="Escalation"),
        required=True),
    "special_steps": _some(_SpecialStep),
    # The weather warnings whose publication reaches this scenario's running cases.
    "weather_warnings": _some(_WeatherWarning, "type"),
}, name="Handbook")
