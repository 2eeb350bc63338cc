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
from workflows import FormField

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
