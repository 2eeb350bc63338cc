"""The handbook data (JSON) of two versions compared value by value: each change as a path with
its old and new value, for the reviewer and the comparison page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_CHANGES = 500
_MISSING = object()


@dataclass(frozen=True)
class DataChange:
    file: str
    path: str
    kind: str  # added, removed, changed
    old: str | None
    new: str | None


def _show(value: Any) -> str | None:
    if value is _MISSING:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _walk(file: str, path: str, old: Any, new: Any, out: list[DataChange]) -> None:
    if len(out) >= MAX_CHANGES or old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            _walk(file, f"{path}.{key}" if path else str(key), old.get(key, _MISSING),
                  new.get(key, _MISSING), out)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            _walk(file, f"{path}[{index}]", before, after, out)
        return
    kind = "added" if old is _MISSING else "removed" if new is _MISSING else "changed"
    out.append(DataChange(file, path or "(root)", kind, _show(old), _show(new)))


def _load(text: str | None) -> Any:
    if text is None:
        return _MISSING
    try:
        return json.loads(text)
    except ValueError:
        return text  # shown as a whole value: the draft check names the JSON error


def data_changes(old: dict[str, str], new: dict[str, str]) -> list[DataChange]:
    """Every changed value of the JSON files of two bundles, old -> new (at most 500)."""
    out: list[DataChange] = []
    for name in sorted(n for n in set(old) | set(new) if n.endswith(".json")):
        _walk(name, "", _load(old.get(name)), _load(new.get(name)), out)
    return out
