"""Free-text filters typed by people: what they type is matched literally, so `%`, `_` and
`\\` are characters, not LIKE wildcards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_

ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    """The LIKE pattern for 'contains this text', to be used with `escape=ESCAPE`."""
    escaped = (text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%")
               .replace("_", ESCAPE + "_"))
    return f"%{escaped}%"


def any_contains(text: str, *columns: Any) -> ColumnElement[bool]:
    """Case-insensitive: one of the columns contains the text."""
    pattern = contains_pattern(text.strip())
    return or_(*[column.ilike(pattern, escape=ESCAPE) for column in columns])
