"""A case's process variables: the time limits and escalation ladder of its level, as the
handbook defines them, and the variables a case starts with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.services.handbook_data import Handbook, WarningItem, limits_for
from app.services.handbook_schema import parse_duration


def _ladder_after(steps: list[dict[str, Any]], role: str) -> str | None:
    for step in steps:
        if role in step.get("to", []):
            return str(step["after"])
    return None


def _add(a: str, b: str | None) -> str:
    total = parse_duration(a) + (parse_duration(b) if b else parse_duration("PT0S"))
    seconds = int(total.total_seconds())
    return f"PT{max(seconds, 1)}S"


def level_variables(handbook: Handbook, level: str, opened_at: datetime) -> dict[str, Any]:
    """The process variables that depend on the level: limits and the escalation ladder.

    Durations count from the push (the case's opening), as the handbooks define them; the
    overdue tracking cycle therefore starts at the closing deadline itself.
    """
    limits = limits_for(handbook, level)
    ladder = handbook.data["escalation_ladder"].get(level, {})
    missed = ladder.get("missed_accept", [])
    overdue = ladder.get("overdue_not_closed", [])
    remind_every = next((s.get("repeat_every") for s in missed if s.get("repeat_every")),
                        None) or limits.accept
    track_every = next((s.get("repeat_every") for s in overdue if s.get("repeat_every")),
                       None) or limits.due
    return {
        "accept_limit": limits.accept,
        "on_site_limit": limits.on_site or limits.due,
        "feedback_limit": limits.feedback or limits.due,
        "close_limit": limits.due,
        "reminder_cycle": f"R3/{remind_every}",
        "escalate_after": _add(limits.accept, _ladder_after(missed, "department_head")),
        "supervise_after": _add(limits.accept, _ladder_after(missed, "leader_in_charge")),
        "tracking_cycle": f"R20/{(opened_at + parse_duration(limits.due)).isoformat()}/"
                          f"{track_every}",
        "disposal_type": handbook.disposal_types.get(level, "self"),
    }


def start_variables(handbook: Handbook, item: WarningItem, *, level: str, case_no: str,
                    value: float, town: str, point: str, opened_at: datetime,
                    limits: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The process variables a case starts with. `limits`: each level's variables at
    `opened_at`, when the caller has them already (the cases of a batch open at one time)."""
    if limits is None:
        limits = all_level_variables(handbook, opened_at)
    return {
        "case_no": case_no, "scenario": handbook.scenario, "item_code": item.code,
        "item_name": item.name, "level": level, "value": value, "unit": item.unit,
        "town": town, "point": point,
        "limits": {lv: dict(variables) for lv, variables in limits.items()},
        **limits.get(level, level_variables(handbook, level, opened_at)),
    }


def all_level_variables(handbook: Handbook, opened_at: datetime) -> dict[str, dict[str, Any]]:
    """`level_variables` of each of the handbook's levels."""
    return {lv: level_variables(handbook, lv, opened_at) for lv in handbook.levels}
