"""Command handbook data (Art 9): validate `handbooks/scenarios/*.json`, read levels and limits."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Set
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marshmallow import ValidationError

from app.services.errors import SeedError
from app.services.handbook_schema import (
    DEFAULT_FALLBACK_CHAIN,
    LEVELS,
    _Handbook,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "handbooks" / "scenarios"
ORG_DIR = ROOT / "handbooks" / "org"


@dataclass(frozen=True)
class WarningItem:
    code: str
    name: str
    object_type: str
    indicator: str
    unit: str
    source_types: tuple[str, ...]
    direction: str
    inclusive: bool
    thresholds: Mapping[str, float]  # most severe level first
    duration_seconds: int | None  # None: an instant reading counts
    back_to_normal: float

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.thresholds)


@dataclass(frozen=True)
class TimeLimits:
    level: str
    accept: str
    on_site: str | None
    feedback: str | None
    close: str | None
    default: bool
    overrides: Mapping[str, str]  # limit name -> source, e.g. {"on_site": "statutory"}

    @property
    def due(self) -> str:
        """The closing deadline: `close` when set, else `feedback` (one is always set)."""
        return self.close or self.feedback or ""

    def source_of(self, name: str) -> str:
        """`statutory`/`standard` when overridden, `default` when inferred, else `handbook`."""
        return self.overrides.get(name) or ("default" if self.default else "handbook")

    def variables(self) -> dict[str, str | None]:
        """The ISO 8601 durations a case starts with, for its BPMN timers."""
        return {"accept": self.accept, "on_site": self.on_site, "feedback": self.feedback,
                "close": self.close, "due": self.due}


@dataclass(frozen=True)
class Handbook:
    scenario: str
    name: str
    owner_department: str
    process_id: str
    warning_items: tuple[WarningItem, ...]
    time_limits: Mapping[str, TimeLimits]
    disposal_types: Mapping[str, str]  # level -> disposal type
    data: Mapping[str, Any]  # the whole validated document, for forms and process variables

    def item(self, code: str) -> WarningItem:
        found = next((i for i in self.warning_items if i.code == code), None)
        if found is None:
            raise LookupError(f"{self.scenario}: no warning item {code!r}")
        return found

    @property
    def levels(self) -> tuple[str, ...]:
        used = {level for item in self.warning_items for level in item.levels}
        return tuple(level for level in LEVELS if level in used)

    @property
    def weather_warning_types(self) -> frozenset[str]:
        """The weather warning types whose publication reaches this scenario's cases."""
        return frozenset(w["type"] for w in self.data.get("weather_warnings") or ())

    @property
    def fallback_chain(self) -> tuple[Mapping[str, str], ...]:
        return fallback_chain(self.data)


def fallback_chain(data: Mapping[str, Any] | None) -> tuple[Mapping[str, str], ...]:
    """Who hears a notice whose lane has nobody in scope: the handbook's chain, or the
    default one (town business admin, department business admin, department head, 区安委办)."""
    found = ((data or {}).get("responsibility") or {}).get("fallback")
    return tuple(found["chain"]) if found else DEFAULT_FALLBACK_CHAIN


def level_for(item: WarningItem, value: float) -> str | None:
    """The most severe level a reading reaches in the item's direction, or None."""
    if math.isnan(value):
        return None
    for level, limit in item.thresholds.items():
        if item.direction == "above":
            reached = value >= limit if item.inclusive else value > limit
        else:
            reached = value <= limit if item.inclusive else value < limit
        if reached:
            return level
    return None


def recovered(item: WarningItem, value: float) -> bool:
    """Whether a reading is back to normal: strictly on the safe side of `back_to_normal`."""
    return value < item.back_to_normal if item.direction == "above" else value > item.back_to_normal


def limits_for(handbook: Handbook, level: str) -> TimeLimits:
    try:
        return handbook.time_limits[level]
    except KeyError:
        raise LookupError(f"{handbook.scenario}: no time limits for level {level!r}") from None


def _cross_check(name: str, doc: dict[str, Any], departments: Set[str],
                 scenarios: Mapping[str, str]) -> list[str]:
    """The rules a schema cannot express; returns `path: message` problems."""
    problems: list[str] = []

    def fail(path: str, message: str) -> None:
        problems.append(f"{path}: {message}")

    code, owner, resp = doc["scenario"], doc["owner_department"], doc["responsibility"]
    if code != name.removesuffix(".json"):
        fail("scenario", f"{code!r} does not match the file name (expected {code}.json)")
    elif code not in scenarios:
        fail("scenario", f"unknown scenario {code!r}: platform.json has no such scenario")
    if doc["process_id"] != f"scenario_{code}":
        fail("process_id", f"must be 'scenario_{code}', not {doc['process_id']!r}")
    if owner in departments and scenarios.get(code, owner) != owner:
        fail("owner_department", f"platform.json gives scenario {code} to {scenarios[code]!r}")
    refs = [("owner_department", owner),
            ("responsibility.responders.department", resp["responders"]["department"])]
    refs += [(f"responsibility.joint_departments.{i}", d)
             for i, d in enumerate(resp["joint_departments"])]
    refs += [(f"responsibility.notify.{step}.{i}.department", t["department"])
             for step, targets in resp["notify"].items() for i, t in enumerate(targets)]
    for path, dept in refs:
        if dept is not None and dept not in departments:
            fail(path, f"unknown department {dept!r}")

    objects = {o["code"] for o in doc["object_types"]}
    used: dict[str, str] = {}  # level -> the first item that uses it
    for index, item in enumerate(doc["warning_items"]):
        path = f"warning_items.{index}"
        if item["object_type"] not in objects:
            fail(f"{path}.object_type", f"unknown object type {item['object_type']!r}")
        levels = [lv for lv in reversed(LEVELS) if lv in item["thresholds"]]  # mildest first
        if not levels:
            fail(f"{path}.thresholds", "give a threshold for at least one level")
            continue
        for lv in levels:
            used.setdefault(lv, item["code"])
        up = item["direction"] == "above"
        values = [item["thresholds"][lv]["value"] for lv in levels]
        for (low, a), (high, b) in pairwise(zip(levels, values, strict=True)):
            if (b <= a) if up else (b >= a):
                fail(f"{path}.thresholds",
                     f"thresholds must {'rise' if up else 'fall'} with severity for direction "
                     f"{item['direction']}: {high} ({b:g}) is not {'above' if up else 'below'} "
                     f"{low} ({a:g})")
        back = item["back_to_normal"]["value"]
        if (back > values[0]) if up else (back < values[0]):
            fail(f"{path}.back_to_normal", f"{back:g} is past the {levels[0]} threshold "
                                           f"({values[0]:g}); recovery lies on the safe side")

    for level in (lv for lv in LEVELS if lv in used):
        lacks = f"level {level} is used by warning item {used[level]} but has no"
        for path, section, what in (
                ("time_limits", doc["time_limits"], "time limit"),
                ("escalation_ladder", doc["escalation_ladder"], "escalation ladder"),
                ("disposal_type.by_level", doc["disposal_type"]["by_level"], "disposal type")):
            if level not in section:
                fail(f"{path}.{level}", f"{lacks} {what}")
        if not any(m["levels"] is None or level in m["levels"] for m in doc["measures"]):
            fail("measures", f"{lacks} measures")
    item_codes = {i["code"] for i in doc["warning_items"]}
    for section in ("measures", "special_steps"):
        for index, row in enumerate(doc[section]):
            for ref in sorted(set(row["items"] or ()) - item_codes):
                fail(f"{section}.{index}.items", f"unknown warning item {ref!r}")

    for level, ladder in doc["escalation_ladder"].items():
        for kind in ("missed_accept", "overdue_not_closed"):
            path = f"escalation_ladder.{level}.{kind}"
            for index, step in enumerate(ladder[kind]):
                if index and parse_duration(step["after"]) < parse_duration(
                        ladder[kind][index - 1]["after"]):
                    fail(f"{path}.{index}.after", "steps must be in order of their delay")
                if step["repeat_every"] and not parse_duration(step["repeat_every"]):
                    fail(f"{path}.{index}.repeat_every", "must be longer than zero")
    causes = [c["code"] for c in doc["cancellation"]["causes"]]
    for index, fld in enumerate(doc["feedback_fields"]):
        if fld["id"] == "cause_category" and [v["id"] for v in fld["values"] or []] != causes:
            fail(f"feedback_fields.{index}.values",
                 "cause_category must offer the cancellation causes, in the same order")
    return problems


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:  # json.loads would silently keep the last one
            raise ValueError(f"duplicate key {key!r}")
        found[key] = value
    return found


def _load_json(name: str, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:  # a ValueError too, so it comes first
        raise SeedError(f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}): "
                        f"{exc.msg}", details={"file": name}) from None
    except ValueError as exc:
        raise SeedError(f"{name}: not valid JSON: {exc}", details={"file": name}) from None


def _org_rows(org_dir: Path, name: str, key: str) -> list[dict[str, Any]]:
    # org.read_org validates these files in full; here only the codes are needed.
    path = org_dir / name
    if not path.is_file():
        raise SeedError(f"{name}: file not found at {path}")
    rows: list[dict[str, Any]] = _load_json(name, path.read_text(encoding="utf-8"))[key]
    return rows


def department_codes(org_dir: Path = ORG_DIR) -> set[str]:
    return {str(row["code"]) for row in _org_rows(org_dir, "departments.json", "departments")}


def platform_scenarios(org_dir: Path = ORG_DIR) -> dict[str, str]:
    """Scenario code -> owner department code, from platform.json."""
    return {str(row["code"]): str(row.get("department"))
            for row in _org_rows(org_dir, "platform.json", "scenarios")}


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        return [line for key, value in messages.items()
                for line in _flatten(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, prefix)]
    return [f"{prefix}: {messages}"]


def parse_handbook(name: str, text: str, departments: Set[str],
                   scenarios: Mapping[str, str]) -> Handbook:
    """Validate one handbook file's text; raise SeedError naming the file and field path."""
    try:
        doc: dict[str, Any] = _Handbook().load(_load_json(name, text))
    except ValidationError as exc:
        problems = _flatten(exc.messages)
    else:
        problems = _cross_check(name, doc, departments, scenarios)
    if problems:
        raise SeedError("; ".join(f"{name}: {p}" for p in problems),
                        details={"file": name, "fields": problems})
    items = tuple(WarningItem(
        code=i["code"], name=i["name"], object_type=i["object_type"], indicator=i["indicator"],
        unit=i["unit"], source_types=tuple(i["source_types"]), direction=i["direction"],
        inclusive=i["inclusive"], thresholds=MappingProxyType(
            {lv: i["thresholds"][lv]["value"] for lv in LEVELS if lv in i["thresholds"]}),
        duration_seconds=i["duration"]["seconds"], back_to_normal=i["back_to_normal"]["value"],
    ) for i in doc["warning_items"])
    limits = {lv: TimeLimits(level=lv, accept=lim["accept"], on_site=lim["on_site"],
                             feedback=lim["feedback"], close=lim["close"], default=lim["default"],
                             overrides=MappingProxyType(
                                 {k: v["source"] for k, v in lim["overrides"].items()}))
              for lv in LEVELS if (lim := doc["time_limits"].get(lv)) is not None}
    return Handbook(scenario=doc["scenario"], name=doc["name"],
                    owner_department=doc["owner_department"], process_id=doc["process_id"],
                    warning_items=items, time_limits=MappingProxyType(limits),
                    disposal_types=MappingProxyType(dict(doc["disposal_type"]["by_level"])),
                    data=MappingProxyType(doc))


def read_handbooks(directory: Path = SCENARIO_DIR, departments: Set[str] | None = None, *,
                   scenarios: Mapping[str, str] | None = None) -> dict[str, Handbook]:
    """Validate every `<scenario>.json` in `directory`: one handbook per platform.json scenario.

    Department codes come from `handbooks/org/departments.json` and scenarios (with their owner
    departments) from `platform.json` unless given. Raises SeedError naming the file and field
    of the first file with problems; touches no database.
    """
    departments = department_codes() if departments is None else departments
    scenarios = platform_scenarios() if scenarios is None else scenarios
    if not directory.is_dir():
        raise SeedError(f"{directory.name}: handbook directory not found at {directory}")
    handbooks: dict[str, Handbook] = {}
    item_files: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SeedError(f"{path.name}: the file is not UTF-8 text; save it as UTF-8",
                            details={"file": path.name}) from None
        handbook = parse_handbook(path.name, text, departments, scenarios)
        for index, item in enumerate(handbook.warning_items):
            # Alert intake finds the handbook by item code, so codes are unique across files.
            if item.code in item_files:
                raise SeedError(f"{path.name}: warning_items.{index}.code: {item.code!r} is "
                                f"also used in {item_files[item.code]}",
                                details={"file": path.name})
            item_files[item.code] = path.name
        handbooks[handbook.scenario] = handbook
    missing = [code for code in scenarios if code not in handbooks]
    if missing:
        raise SeedError(f"{directory.name}: no handbook for scenario {missing[0]} (expected "
                        f"{missing[0]}.json)", details={"missing": missing})
    return handbooks
