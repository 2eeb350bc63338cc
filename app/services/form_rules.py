"""Checks on submitted task forms beyond what the engine validates per field: a list of
towns (`widget` `towns`), a field required unless another has a given value
(`required_unless` `area=district_wide`), and a time not before another (`not_before`
`effective_at`). All are read from the field's BPMN properties."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.i18n import _l
from app.models import NodeKind, PlatformNode
from workflows import FieldProblem, FormField

# The engine's field problems in the reader's language: the one place they are worded.
_PROBLEMS: dict[str, Any] = {
    "required": lambda p: _l("Required."),
    "read_only": lambda p: _l("This field cannot be changed."),
    "unknown_field": lambda p: _l("This field is not part of the form."),
    "not_text": lambda p: _l("Enter text."),
    "not_whole_number": lambda p: _l("Enter a whole number."),
    "not_yes_or_no": lambda p: _l("Choose yes or no."),
    "not_date_time": lambda p: _l("Enter a date and time (YYYY-MM-DD HH:MM)."),
    "no_time_zone": lambda p: _l("Enter a date and time (YYYY-MM-DD HH:MM)."),
    "not_date": lambda p: _l("Enter a date (YYYY-MM-DD)."),
    "not_an_option": lambda p: _l("Choose one of the options."),
    "unsupported_type": lambda p: _l("This field cannot be filled in here."),
    "too_short": lambda p: _l("At least %(n)s characters.", n=p["n"]),
    "too_long": lambda p: _l("At most %(n)s characters.", n=p["n"]),
    "too_small": lambda p: _l("At least %(n)s.", n=p["n"]),
    "too_large": lambda p: _l("At most %(n)s.", n=p["n"]),
}


def describe(problem: FieldProblem) -> str:
    """One field problem of the engine, worded for the reader."""
    say = _PROBLEMS.get(problem.code)
    return str(say(dict(problem.params))) if say else str(problem)

PLACE_KINDS = (NodeKind.TOWN, NodeKind.LINGANG)


def codes(value: Any) -> list[str]:
    """A `towns` value as its node codes."""
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def _required_unless(rule: str, form: Mapping[str, Any]) -> bool:
    """`area=district_wide` (or `area=a|b`): the field is required unless area is one of them."""
    name, _, values = rule.partition("=")
    return str(form.get(name.strip()) or "") not in {v.strip() for v in values.split("|")}


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).strip()) if value else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def check(fields: Iterable[FormField], form: Mapping[str, Any]) -> dict[str, list[str]]:
    """Problems per field id (empty when the form is fine)."""
    problems: dict[str, list[str]] = {}
    fields = list(fields)
    labels = {f.id: f.label for f in fields}
    for field in fields:
        properties = dict(field.properties)
        value = form.get(field.id)
        rule = properties.get("required_unless")
        if rule and _required_unless(rule, form) and not codes(value):
            problems[field.id] = [str(_l("Required."))]
            continue
        if properties.get("widget") == "towns" and codes(value):
            known = set(db.session.scalars(select(PlatformNode.code).where(
                PlatformNode.code.in_(codes(value)), PlatformNode.kind.in_(PLACE_KINDS))))
            unknown = [c for c in codes(value) if c not in known]
            if unknown:
                problems[field.id] = [str(_l("Unknown street or town: %(codes)s",
                                             codes=", ".join(unknown)))]
        earlier = properties.get("not_before")
        start, end = _moment(form.get(earlier)) if earlier else None, _moment(value)
        if start is not None and end is not None and end < start:
            problems[field.id] = [str(_l("Must not be before %(field)s.",
                                         field=labels.get(str(earlier), earlier)))]
    return problems
