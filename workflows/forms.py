"""Form fields of user tasks as plain data, and server-side validation of submitted values.

SpiffWorkflow's Camunda parser reads `camunda:formData` but enforces nothing: constraints are
ignored and defaults arrive as strings. `validate_form_data` is where both happen: it checks each
submitted value against its field (type, required, min/max, minlength/maxlength, enum values,
read-only), converts it (numbers, booleans, ISO dates), fills defaults for missing fields, sets
missing optional fields to None (so conditions can name them), and refuses unknown fields.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .errors import FieldProblem, FieldValueError, FormValidationError

FIELD_TYPES = frozenset({"string", "long", "boolean", "date", "enum"})
CONSTRAINTS = frozenset({"required", "readonly", "min", "max", "minlength", "maxlength"})
_NUMERIC_CONSTRAINTS = ("min", "max", "minlength", "maxlength")
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no", ""})


@dataclass(frozen=True)
class EnumOption:
    id: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class FormField:
    """One `camunda:formField`; `default` is already converted to the field's type."""

    id: str
    label: str
    type: str
    required: bool = False
    readonly: bool = False
    min: float | None = None
    max: float | None = None
    minlength: int | None = None
    maxlength: int | None = None
    default: Any = None
    options: tuple[EnumOption, ...] = ()
    properties: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "label": self.label, "type": self.type, "required": self.required,
            "readonly": self.readonly, "min": self.min, "max": self.max,
            "minlength": self.minlength, "maxlength": self.maxlength, "default": self.default,
            "options": [o.to_dict() for o in self.options],
            "properties": dict(self.properties),
        }


def field_id_problem(field_id: str | None) -> str | None:
    """Why `field_id` cannot name a process variable, or None if it can."""
    if not field_id:
        return ("a form field has no id; give it an id (it becomes the variable name) "
                "or remove the empty field")
    if not field_id.isidentifier() or keyword.iskeyword(field_id):
        return (f"form field id {field_id!r} is not a valid variable name; use letters, "
                "digits and '_' (not starting with a digit)")
    if field_id.startswith("_"):
        return f"form field id {field_id!r} must not start with '_'"
    return None


# Moments every time zone can display: a day inside the ends of the calendar.
_SHOWABLE = (datetime.min.replace(tzinfo=UTC) + timedelta(days=1),
             datetime.max.replace(tzinfo=UTC) - timedelta(days=1))


def convert_value(form_field: FormField, raw: Any) -> Any:
    """Convert one submitted value to the field's type; raise FieldValueError (a ValueError)
    naming the problem by code."""
    kind = form_field.type
    if kind == "string":
        if not isinstance(raw, str):
            raise FieldValueError("not_text")
        return raw
    if kind == "long":
        if isinstance(raw, bool):
            raise FieldValueError("not_whole_number")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise FieldValueError("not_whole_number")
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE:
            return True
        if isinstance(raw, str) and raw.strip().lower() in _FALSE:
            return False
        raise FieldValueError("not_yes_or_no")
    if kind == "date" and dict(form_field.properties).get("widget") == "datetime":
        # A date with time: the Camunda type is `date`; the widget property asks for a time too.
        if not isinstance(raw, str):
            raise FieldValueError("not_date_time")
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise FieldValueError("not_date_time") \
                from None
        if moment.tzinfo is None:
            raise FieldValueError("no_time_zone")
        if not _SHOWABLE[0] <= moment <= _SHOWABLE[1]:
            # The first and last day of the calendar cannot be shown in every time zone.
            raise FieldValueError("not_date_time")
        return moment.isoformat()
    if kind == "date":
        if not isinstance(raw, str):
            raise FieldValueError("not_date")
        try:
            return date.fromisoformat(raw.strip()).isoformat()
        except ValueError:
            raise FieldValueError("not_date") from None
    if kind == "enum":
        ids = [o.id for o in form_field.options]
        if raw not in ids:
            raise FieldValueError("not_an_option", options=", ".join(ids))
        return raw
    raise FieldValueError("unsupported_type", type=kind)


def _check_bounds(form_field: FormField, value: Any) -> FieldProblem | None:
    if isinstance(value, str) and form_field.type in ("string", "enum"):
        if form_field.minlength is not None and len(value) < form_field.minlength:
            return FieldProblem.of("too_short", n=form_field.minlength)
        if form_field.maxlength is not None and len(value) > form_field.maxlength:
            return FieldProblem.of("too_long", n=form_field.maxlength)
    if isinstance(value, int) and not isinstance(value, bool):
        if form_field.min is not None and value < form_field.min:
            return FieldProblem.of("too_small", n=_number(form_field.min))
        if form_field.max is not None and value > form_field.max:
            return FieldProblem.of("too_large", n=_number(form_field.max))
    return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


def validate_form_data(
    fields: tuple[FormField, ...], submitted: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate and convert `submitted` against `fields`; raise FormValidationError per field."""
    errors: dict[str, FieldProblem] = {}
    result: dict[str, Any] = {}
    known = {f.id for f in fields}
    for name in submitted:
        if name not in known:
            errors[str(name)] = FieldProblem.of("unknown_field")
    for form_field in fields:
        raw = submitted.get(form_field.id)
        if form_field.readonly:
            if not _empty(raw) and raw != form_field.default:
                errors[form_field.id] = FieldProblem.of("read_only")
                continue
            result[form_field.id] = form_field.default
            continue
        if _empty(raw) and form_field.type != "boolean":
            if form_field.default is not None:
                result[form_field.id] = form_field.default
            elif form_field.required:
                errors[form_field.id] = FieldProblem.of("required")
            else:
                result[form_field.id] = None
            continue
        if raw is None:  # a boolean not submitted (an unticked checkbox sends nothing)
            if form_field.default is not None:
                result[form_field.id] = form_field.default
            elif form_field.required:
                errors[form_field.id] = FieldProblem.of("required")
            else:
                result[form_field.id] = False
            continue
        try:
            value = convert_value(form_field, raw)
        except FieldValueError as exc:
            errors[form_field.id] = exc.problem
            continue
        problem = _check_bounds(form_field, value)
        if problem:
            errors[form_field.id] = problem
            continue
        result[form_field.id] = value
    if errors:
        raise FormValidationError(errors)
    return result


def build_form_field(
    field_id: str, label: str | None, kind: str | None, default: str | None,
    constraints: Mapping[str, str | None], options: tuple[EnumOption, ...],
    properties: tuple[tuple[str, str], ...],
) -> tuple[FormField | None, list[str]]:
    """Build a FormField from the parsed XML attributes; return it or the problems found."""
    problems: list[str] = []
    kind = kind or "string"
    if kind not in FIELD_TYPES:
        problems.append(f"form field {field_id!r} has the unsupported type {kind!r}; use one of "
                        + ", ".join(sorted(FIELD_TYPES)))
        return None, problems
    if kind == "enum" and not options:
        problems.append(f"form field {field_id!r} is an enum without values; add values")
    numbers: dict[str, float] = {}
    for name, config in constraints.items():
        if name not in CONSTRAINTS:
            problems.append(f"form field {field_id!r} has the unknown constraint {name!r}; "
                            "use " + ", ".join(sorted(CONSTRAINTS)))
        elif name in _NUMERIC_CONSTRAINTS:
            try:
                number = float(config or "")
                if not math.isfinite(number):
                    raise ValueError
                numbers[name] = number
            except ValueError:
                problems.append(f"form field {field_id!r}: constraint {name!r} needs a number, "
                                f"not {config!r}")
    if problems:
        return None, problems
    form_field = FormField(
        id=field_id, label=label or field_id, type=kind,
        required="required" in constraints, readonly="readonly" in constraints,
        min=numbers.get("min"), max=numbers.get("max"),
        minlength=int(numbers["minlength"]) if "minlength" in numbers else None,
        maxlength=int(numbers["maxlength"]) if "maxlength" in numbers else None,
        options=options, properties=properties,
    )
    if default is not None:
        try:
            converted = convert_value(form_field, default)
        except ValueError as exc:
            return None, [f"form field {field_id!r}: default value {default!r} {exc}"]
        bound = _check_bounds(form_field, converted)
        if bound:
            return None, [f"form field {field_id!r}: default value {default!r} {bound}"]
        form_field = replace(form_field, default=converted)
    return form_field, []
