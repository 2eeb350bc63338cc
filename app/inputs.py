"""What a request may carry, checked the same way for pages and the API: ids the database can
hold, text it can store (no NUL, no lone surrogate) and strict JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from flask import Request, request
from marshmallow import Schema, ValidationError, fields
from werkzeug.routing import IntegerConverter

from app.i18n import _l
from app.services.errors import DomainError, ValidationFailed

# Id columns are INTEGER: 64 bits on SQLite but 32 on PostgreSQL, which refuses a larger
# bound value outright. An id outside the narrower range cannot exist on either database.
ID_MAX = 2**31 - 1
ID_MIN = -(2**31)
# Far beyond any list we show, and small enough that page x per_page stays an offset.
MAX_PAGE = 1_000_000


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: at most 10 digits and at most ID_MAX, so a larger id (2^63,
    or four hundred digits) matches no route (404) instead of reaching the database."""

    regex = r"\d{1,10}"

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = None, signed: bool = False) -> None:
        bounded = ID_MAX if max is None or max > ID_MAX else max
        super().__init__(map, fixed_digits, min, bounded, signed)


def db_id(text: str | None) -> int | None:
    """A positive id the database can hold, or None for anything else (blank, text, huge)."""
    if text is None:
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value <= ID_MAX else None


def page_number(text: str | None, default: int = 1) -> int:
    """A page (or step) number from a query string: 1 to MAX_PAGE, `default` when unreadable."""
    if text is None:
        return default
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        return default
    if len(text) > len(str(MAX_PAGE)):
        return MAX_PAGE
    return max(1, min(int(text), MAX_PAGE))


class DbInteger(fields.Integer):
    """An integer an id column can hold (see ID_MAX); beyond is "Number too large."."""

    default_error_messages = {"too_large": _l("Number too large.")}

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "int32", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and len(value.strip()) > 40:
            # int() of thousands of digits is slow; nothing that long is an id.
            raise self.make_error("too_large", input=value)
        number = super()._validated(value)
        if not ID_MIN <= number <= ID_MAX:
            raise self.make_error("too_large", input=value)
        return number


# ---------------------------------------------------------------- text the database can store

# PostgreSQL text cannot hold NUL, and a lone surrogate is not a character in any encoding.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return str(_l("Contains a NUL character (U+0000)."))
    return str(_l("Contains an unpaired surrogate (U+%(code)s), which is not a character.",
                  code=f"{ord(char):04X}"))


def unstorable_text(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Field name -> problem, for each (name, value) whose name or value cannot be stored."""
    problems: dict[str, list[str]] = {}
    for name, value in items:
        problem = text_problem(name) or text_problem(value)
        if problem is not None:
            problems.setdefault(_printable(name), []).append(problem)
    return problems


def _printable(name: str) -> str:
    return _UNSTORABLE.sub("\ufffd", name)[:100]


# ---------------------------------------------------------------- JSON bodies

MAX_JSON_DEPTH = 32
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
               float: "number", type(None): "null"}


class JsonRefused(ValueError):
    """A request body that is not JSON we accept; carries the message and details to show."""

    def __init__(self, message: Any, details: dict[str, list[str]]) -> None:
        super().__init__(str(message))
        self.message = message
        self.details = details


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def strict_json_loads(raw: bytes | str) -> Any:
    """Parse a request body as RFC 8259 JSON: UTF-8, no NaN or Infinity, nested at most
    MAX_JSON_DEPTH levels, and only text that can be stored (no NUL, no lone surrogate)."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRefused(_l("The body is not UTF-8 text."), {"body": [
                str(_l("Byte %(n)d: %(reason)s.", n=exc.start, reason=exc.reason))]}) from None
    else:
        text = raw
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise JsonRefused(_l("The body is not valid JSON."),
                          {"body": [str(exc)[:200]]}) from None
    _check_tree(data)
    return data


def _too_deep() -> JsonRefused:
    return JsonRefused(_l("The body is nested more than %(n)d levels deep.", n=MAX_JSON_DEPTH),
                       {"body": [str(_l("Nested too deep."))]})


def _check_tree(data: Any) -> None:
    """Walk the document without recursion: depth, then every key and string value."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[Any, str, int]] = [(data, "$", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(node, dict):
            for key, value in node.items():
                child = f"{path}.{_printable(key)}"
                problem = text_problem(key)
                if problem is not None:
                    problems.setdefault(child, []).append(problem)
                stack.append((value, child, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]", depth + 1) for i, value in enumerate(node))
        elif isinstance(node, str):
            problem = text_problem(node)
            if problem is not None:
                problems.setdefault(path, []).append(problem)
    if problems:
        raise JsonRefused(_l("The body contains text that cannot be stored: see details."),
                          dict(sorted(problems.items())))


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (object, array, string, ...)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


class StrictJson:
    """The `json_module` of the application's requests: `request.get_json()` parses strictly."""

    @staticmethod
    def loads(raw: bytes | str, **_: Any) -> Any:
        return strict_json_loads(raw)

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)


class AppRequest(Request):
    """The application's request: JSON is read by `StrictJson`, and a body that is not JSON
    (or not the JSON we accept) is a 400 in the one error format, never a bare BadRequest."""

    @property  # type: ignore[override]
    def json_module(self) -> Any:
        return StrictJson

    @json_module.setter
    def json_module(self, _: Any) -> None:
        """Flask hands every request the app's lenient JSON provider; bodies stay strict."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise DomainError(
                _l("Send a JSON body with the header Content-Type: application/json."),
                code="unsupported_content_type", status=400,
                details={"Content-Type": [self.mimetype or "-"]})
        if isinstance(e, JsonRefused):
            raise DomainError(e.message, code="bad_json", status=400, details=e.details)
        raise DomainError(_l("The body is not valid JSON."), code="bad_json", status=400,
                          details={"body": [str(e)[:200]]})


def json_object() -> dict[str, Any]:
    """The request's body as a JSON object; anything else is a 400 naming what was sent."""
    data = request.get_json()
    if not isinstance(data, dict):
        raise DomainError(_l("The body must be a JSON object."), code="bad_json", status=400,
                          details={"body": [str(_l("Got a JSON %(type)s.",
                                                   type=json_type(data)))]})
    return data


def refuse_unstorable_text() -> None:
    """Before any view: the path, the query string and (on pages) the posted form fields and
    file names must be text the database can store. Refused whole, so nothing is half-written.

    API bodies are JSON (checked when read); API uploads keep their own size limit, so their
    multipart form is not parsed here.
    """
    items: list[tuple[str, str]] = [("path", request.path)]
    items += request.args.items(multi=True)
    if request.method in ("POST", "PUT", "PATCH") and not request.path.startswith("/api/"):
        items += request.form.items(multi=True)
        items += [(name, upload.filename or "")
                  for name, upload in request.files.items(multi=True)]
    problems = unstorable_text(items)
    if problems:
        raise DomainError(_l("Some of the text sent cannot be stored (a NUL character or a "
                             "broken character); nothing was saved. Remove it and try again."),
                          code="bad_text", status=400, details=problems)


# marshmallow's own messages, made translatable: they reach clients in `details`.
_BUILT_IN = {
    "Missing data for required field.": _l("Missing data for required field."),
    "Field may not be null.": _l("Field may not be null."),
    "Unknown field.": _l("Unknown field."),
    "Invalid input type.": _l("Invalid input type."),
    "Invalid type.": _l("Invalid input type."),
    "Invalid value.": _l("Invalid value."),
    "Not a valid string.": _l("Not a valid string."),
    "Not a valid number.": _l("Not a valid number."),
    "Number too large.": _l("Number too large."),
    "Not a valid integer.": _l("Not a valid integer."),
    "Not a valid boolean.": _l("Not a valid boolean."),
    "Not a valid mapping type.": _l("Not a valid object."),
    "Not a valid list.": _l("Not a valid list."),
    "Special numeric values (nan or infinity) are not permitted.":
        _l("NaN and infinity are not numbers we can store."),
}


def localise(messages: Any) -> Any:
    """marshmallow's error tree with its built-in English messages translated; int keys
    (list indexes) become strings so the tree is valid JSON."""
    if isinstance(messages, dict):
        return {str(k): localise(v) for k, v in messages.items()}
    if isinstance(messages, list):
        return [localise(m) for m in messages]
    if isinstance(messages, str) and messages in _BUILT_IN:
        return str(_BUILT_IN[messages])
    return str(messages)


def load_schema(schema: Schema, data: Any, *,
                unknown: Literal["exclude", "include", "raise"] | None = None) -> dict[str, Any]:
    """Validate and convert `data` with a marshmallow schema: a 422 ValidationFailed with the
    messages per field (in the reader's language) when it does not fit. The one way web forms
    and API bodies are loaded."""
    try:
        loaded = schema.load(data, unknown=unknown) if unknown else schema.load(data)
    except ValidationError as exc:
        raise ValidationFailed(_l("Please correct the marked fields."),
                               details=localise(exc.normalized_messages())) from None
    return loaded  # type: ignore[no-any-return]


def field_messages(details: dict[str, Any]) -> dict[str, list[str]]:
    """Messages per form field for a page: a list field's per-item messages joined."""
    out: dict[str, list[str]] = {}
    for key, value in details.items():
        if isinstance(value, dict):
            out[key] = [str(m) for item in value.values()
                        for m in (item if isinstance(item, list) else [item])]
        else:
            out[key] = [str(m) for m in (value if isinstance(value, list) else [value])]
    return out
