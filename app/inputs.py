"""Numbers from a request, bounded the same way for pages and the API: an id is what the
database can hold (a signed 64-bit integer); anything larger is refused before any query."""

from __future__ import annotations

from typing import Any

from marshmallow import fields
from werkzeug.routing import IntegerConverter

from app.i18n import _l

DB_INT_MAX = 2**63 - 1
DB_INT_MIN = -(2**63)
# Far beyond any list we show, and small enough that page x per_page stays an offset.
MAX_PAGE = 1_000_000


class Int64Converter(IntegerConverter):
    """`<int:...>` in every route: at most 19 digits and at most 2^63 - 1, so a larger id
    matches no route (404) instead of reaching the database."""

    regex = r"\d{1,19}"

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = None, signed: bool = False) -> None:
        bounded = DB_INT_MAX if max is None or max > DB_INT_MAX else max
        super().__init__(map, fixed_digits, min, bounded, signed)


def db_id(text: str | None) -> int | None:
    """A positive id the database can hold, or None for anything else (blank, text, huge)."""
    if text is None:
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= DB_INT_MAX else None


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
    """An integer that fits a database column (signed 64 bits); larger is "Number too large."."""

    default_error_messages = {"too_large": _l("Number too large.")}

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "int64", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and len(value.strip()) > 40:
            # int() of thousands of digits is slow; nothing that long is an id.
            raise self.make_error("too_large", input=value)
        number = super()._validated(value)
        if not DB_INT_MIN <= number <= DB_INT_MAX:
            raise self.make_error("too_large", input=value)
        return number
