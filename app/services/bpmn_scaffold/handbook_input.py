"""What the scaffold takes from the handbook data (handbooks/scenarios/<code>.json).

Only the parts that shape the BPMN: special steps, feedback fields and cancellation causes,
standard measures (for task documentation). The raw JSON is read so the scaffold works on files
that are still being edited; `app.services.handbook_data` validates them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from .build import choice, flag, moment, number, text, textarea, upload
from .model import FormField

ROOT = Path(__file__).resolve().parents[3]
SCENARIO_DIR = ROOT / "handbooks" / "scenarios"
Handbook = Mapping[str, Any]


@dataclass(frozen=True)
class SpecialStep:
    """A scenario-particular step of the handbook, drawn as a user task."""

    id: str
    name: str
    role: str
    levels: tuple[str, ...] | None
    items: tuple[str, ...] | None
    fields: tuple[FormField, ...]
    deadline: str | None = None          # ISO 8601 duration
    deadline_from: str = "push"          # "push" or "accept"
    deadline_source: str | None = None   # "statutory" / "standard" / None
    basis: str = ""

    @property
    def element_id(self) -> str:
        return f"Activity_{self.id}"

    @property
    def conditional(self) -> bool:
        return bool(self.levels) or bool(self.items)


def load_handbooks(directory: Path = SCENARIO_DIR) -> dict[str, Handbook]:
    """Scenario code -> raw handbook document, for every JSON file in `directory`."""
    result: dict[str, Handbook] = {}
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            result[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return result


def form_field(spec: Mapping[str, Any]) -> FormField:
    """A handbook form field (types string/text/long/enum/boolean/datetime/file) as a
    `camunda:formField`."""
    field_id, label, kind = spec["id"], spec["label"], spec["type"]
    required = bool(spec.get("required"))
    if kind == "string":
        return text(field_id, label, required=required)
    if kind == "text":
        return textarea(field_id, label, required=required)
    if kind == "long":
        return number(field_id, label, required=required, min=None)
    if kind == "boolean":
        return flag(field_id, label)
    if kind == "datetime":
        return moment(field_id, label, required=required)
    if kind == "file":
        return upload(field_id, label, required=required)
    if kind == "enum":
        options = tuple((v["id"], v["name"]) for v in spec.get("values") or ())
        return choice(field_id, label, options, required=required)
    raise ValueError(f"form field {field_id!r} has the unknown type {kind!r}")


def special_steps(handbook: Handbook | None) -> list[SpecialStep]:
    steps = []
    for row in (handbook or {}).get("special_steps") or ():
        deadline = row.get("deadline") or {}
        steps.append(SpecialStep(
            id=row["id"], name=row["name"], role=row["role"],
            levels=tuple(row["levels"]) if row.get("levels") else None,
            items=tuple(row["items"]) if row.get("items") else None,
            fields=tuple(form_field(f) for f in row.get("form") or ()),
            deadline=deadline.get("duration"), deadline_from=deadline.get("from", "push"),
            deadline_source=deadline.get("source"), basis=deadline.get("basis", ""),
        ))
    return steps


def common_feedback_ids(handbooks: Mapping[str, Handbook]) -> list[str]:
    """Feedback field ids every handbook has (in the order of the first handbook)."""
    common: list[str] | None = None
    for handbook in handbooks.values():
        ids = [f["id"] for f in handbook.get("feedback_fields") or ()]
        common = ids if common is None else [i for i in common if i in ids]
    return common or []


def cancellation_causes(handbooks: Mapping[str, Handbook]) -> tuple[tuple[str, str], ...]:
    """Every handbook's cancellation causes, first occurrence first (a common superset)."""
    causes: dict[str, str] = {}
    for handbook in handbooks.values():
        for cause in (handbook.get("cancellation") or {}).get("causes") or ():
            causes.setdefault(cause["code"], cause["name"])
    return tuple(causes.items())


def feedback_field_specs(handbooks: Mapping[str, Handbook]) -> dict[str, Mapping[str, Any]]:
    """The first definition of each feedback field id across the handbooks."""
    specs: dict[str, Mapping[str, Any]] = {}
    for handbook in handbooks.values():
        for spec in handbook.get("feedback_fields") or ():
            specs.setdefault(spec["id"], spec)
    return specs


# How a measure's levels read in the documentation a responder sees.
LEVEL_WORDS = {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}


def measures_text(handbook: Handbook | None) -> str:
    """The standard measures as a numbered list for task documentation."""
    lines = []
    for index, measure in enumerate((handbook or {}).get("measures") or (), start=1):
        levels = measure.get("levels")
        scope = f"(适用:{'、'.join(LEVEL_WORDS.get(lv, lv) for lv in levels)})" if levels else ""
        lines.append(f"{index}. {measure['text']}{scope}")
    return "\n".join(lines)


_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def duration_words(duration: str) -> tuple[str, int]:
    """(timedelta keyword, amount) for a whole ISO 8601 duration, e.g. PT30M -> minutes=30."""
    match = _DURATION.fullmatch(duration)
    if match is None or duration in ("P", "PT"):
        raise ValueError(f"{duration!r} is not an ISO 8601 duration of the form PnDTnHnMnS")
    days, hours, minutes, secs = (int(g or 0) for g in match.groups())
    seconds = int(timedelta(days=days, hours=hours, minutes=minutes, seconds=secs)
                  / timedelta(seconds=1))
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            return unit, seconds // size
    return "seconds", seconds
