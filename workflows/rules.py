"""The rules every handbook shares, as named functions of the script environment.

A handbook's script task calls one in a single line (`grade_and_push()`), so a rule is written
once here instead of being pasted into every BPMN file. Each function reads and changes the
task data of the script that calls it (the script's variables), uses only the engine call's
clock (`now()`), and leaves nothing but plain JSON behind: runs stay replayable.

A rule's meaning is part of every version that calls it: change what a rule does under a new
name, so versions (and the replay of cases) that call the old one keep their behaviour.

Level handling: `limits` maps each level to its time limits; the current level's limits are kept
flattened in `accept_limit`, `on_site_limit`, `feedback_limit`, `close_limit`, `escalate_after` and
`reminder_cycle` because timers name these variables. Messages that arrive while the case runs
(level upgrade, back to normal, weather warning) are handled in event sub-processes, whose data
is their own; they record what happened in the process-level data object `case_updates`, and the
main path applies it at its next synchronisation point.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from .hooks import current_call

Data = MutableMapping[str, Any]
RANK = {"blue": 1, "yellow": 2, "orange": 3, "red": 4}
_UNITS = {"W": 604800, "D": 86400, "H": 3600, "M": 60, "S": 1}

# The variables of the script being run (its globals), set by the evaluator around each run.
SCRIPT_DATA: ContextVar[Data | None] = ContextVar("SCRIPT_DATA", default=None)


def _now() -> datetime:
    call = current_call()
    return call.now if call is not None else datetime.now(UTC)


def _stamp() -> str:
    return _now().isoformat()


def flatten_limits(d: Data) -> None:
    """Recompute the flattened limits of `level` from `limits[level]`, which may use the
    variable names themselves (accept_limit, ..., as the application sets them) or the
    handbook's names (accept, on_site, feedback, close, reminder_every, escalate_after); what
    is missing keeps its value."""
    level_limits = (d.get("limits") or {}).get(d.get("level")) or {}
    d["accept_limit"] = (level_limits.get("accept_limit") or level_limits.get("accept")
                         or d.get("accept_limit"))
    d["feedback_limit"] = (level_limits.get("feedback_limit") or level_limits.get("feedback")
                           or level_limits.get("close") or d.get("feedback_limit"))
    d["close_limit"] = (level_limits.get("close_limit") or level_limits.get("close")
                        or level_limits.get("feedback") or d.get("close_limit"))
    d["on_site_limit"] = (level_limits.get("on_site_limit") or level_limits.get("on_site")
                          or d["feedback_limit"])
    d["escalate_after"] = level_limits.get("escalate_after") or d.get("escalate_after")
    if level_limits.get("reminder_cycle"):
        d["reminder_cycle"] = level_limits["reminder_cycle"]
    elif level_limits.get("reminder_every"):
        d["reminder_cycle"] = (str(d.get("reminder_cycle") or "R3").split("/")[0] + "/"
                               + level_limits["reminder_every"])


def _current_level(d: Data) -> None:
    """Event sub-processes start from the data the case started with; their data shows the
    case's current level and limits too (the application reads the level from the latest
    step)."""
    d["level"] = d["case_updates"].get("level") or d.get("level")
    flatten_limits(d)


def _rank(level: Any) -> int:
    return RANK.get(level, 0) if isinstance(level, str) else 0


def register_case(d: Data) -> None:
    """Complete the start data: limits that fall back on each other, the case's outcome and
    the `case_updates` record the event sub-processes write to."""
    d["on_site_limit"] = d.get("on_site_limit") or d.get("feedback_limit") or d.get("close_limit")
    d["feedback_limit"] = d.get("feedback_limit") or d.get("close_limit")
    d["close_limit"] = d.get("close_limit") or d.get("feedback_limit")
    d.update(expert_level=None, back_to_normal=False, normal_value=None, weather_warnings=[],
             outcome="open")
    d["case_updates"] = {"level": d.get("level"), "value": d.get("value"), "upgrades": 0,
                         "back_to_normal": False, "normal_value": None, "weather_warnings": []}


def record_false_alarm(d: Data) -> None:
    """The assessment's verdict becomes the case's outcome; the case is archived now."""
    d["outcome"] = d.get("verdict")
    d["archived_at"] = _stamp()


def grade_and_push(d: Data) -> None:
    """The level to push at: the assessed level, the expert's for a major risk, or a higher
    level that arrived meanwhile; then that level's limits; the push is recorded."""
    updates = d["case_updates"]
    if not d.get("level"):
        d["level"] = updates.get("level")
    if d.get("major_risk") and _rank(d.get("expert_level")) > 0:
        d["level"] = d["expert_level"]
    if _rank(updates.get("level")) > _rank(d.get("level")):
        d["level"] = updates.get("level")
    flatten_limits(d)
    updates["level"] = d["level"]
    d.update(pushed=True, pushed_level=d["level"], pushed_at=_stamp())


def sync_case_updates(d: Data, stamp: str | None = None) -> None:
    """Apply what the event sub-processes recorded (a higher level and its limits, the latest
    value, back to normal, weather warnings); `stamp` names a variable to set to now."""
    updates = d["case_updates"]
    if _rank(updates.get("level")) > _rank(d.get("level")):
        d["level"] = updates.get("level")
        d["level_upgraded"] = True
    flatten_limits(d)
    d["value"] = updates.get("value", d.get("value"))
    d["back_to_normal"] = updates.get("back_to_normal", False)
    d["normal_value"] = updates.get("normal_value")
    d["weather_warnings"] = updates.get("weather_warnings", [])
    if stamp:
        d[stamp] = _stamp()


def apply_level_upgrade(d: Data) -> None:
    """A level-upgrade message (`upgrade`): record a higher level and the latest value."""
    updates, upgrade = d["case_updates"], d.get("upgrade") or {}
    new_level = upgrade.get("level")
    d["level_upgraded"] = _rank(new_level) > _rank(updates.get("level"))
    if d["level_upgraded"]:
        updates["level"] = new_level
    if upgrade.get("value") is not None:
        updates["value"] = upgrade.get("value")
    updates["upgrades"] = updates.get("upgrades", 0) + 1
    _current_level(d)


def record_back_to_normal(d: Data) -> None:
    """A back-to-normal message (`normal`): the reading is normal again."""
    updates = d["case_updates"]
    updates["back_to_normal"] = True
    updates["normal_value"] = (d.get("normal") or {}).get("value")
    updates["normal_at"] = _stamp()
    _current_level(d)


def record_weather_warning(d: Data) -> None:
    """A published weather warning (`warning`) reaches the case: kept (the last 20), and
    `weather_outranks` says whether its level is above the case's."""
    updates, warning = d["case_updates"], d.get("warning") or {}
    received = {"warning_type": warning.get("warning_type"), "level": warning.get("level"),
                "area": warning.get("area"), "received_at": _stamp()}
    updates["weather_warnings"] = (updates.get("weather_warnings", []) + [received])[-20:]
    d["weather_outranks"] = _rank(warning.get("level")) > _rank(updates.get("level"))
    _current_level(d)


def weather_level_upgrade(d: Data) -> None:
    """Raise the case to the weather warning's level."""
    updates = d["case_updates"]
    updates["level"] = (d.get("warning") or {}).get("level")
    updates["upgrades"] = updates.get("upgrades", 0) + 1
    _current_level(d)


def track_overdue(d: Data) -> None:
    """An overdue-tracking round: recorded, with the case's current level and limits."""
    d["tracked_at"] = _stamp()
    _current_level(d)


def duration_seconds(text: str) -> int:
    """Seconds of an ISO 8601 duration such as PT30M, P1DT2H or P1W (a month is 30 days)."""
    total, digits, in_time = 0, "", False
    for char in str(text).upper():
        if char == "T":
            in_time = True
        elif char.isdigit():
            digits += char
        elif char in _UNITS:
            unit = 2592000 if char == "M" and not in_time else _UNITS[char]
            total += int(digits or "0") * unit
            digits = ""
    return total


def schedule_accept(d: Data) -> None:
    """Timers of the accept step, each time it is (re)assigned: reminders start when the
    accept limit has passed and repeat as `reminder_cycle` says (its repetitions and period are
    kept); supervision comes at `limits[level]['supervise_after']` when the handbook gives
    one, else at the accept limit plus `escalate_after`."""
    accept = duration_seconds(d["accept_limit"])
    escalate = duration_seconds(d["escalate_after"])
    cycle = str(d["reminder_cycle"]).split("/")
    d["reminder_cycle"] = (cycle[0] + "/" + (_now() + timedelta(seconds=accept)).isoformat()
                           + "/" + cycle[-1])
    d["supervise_after"] = (((d.get("limits") or {}).get(d.get("level")) or {})
                            .get("supervise_after") or f"PT{accept + escalate}S")


RULES: dict[str, Callable[..., None]] = {
    f.__name__: f for f in (
        register_case, record_false_alarm, grade_and_push, sync_case_updates,
        apply_level_upgrade, record_back_to_normal, record_weather_warning,
        weather_level_upgrade, track_overdue, schedule_accept, flatten_limits)
}


def _bound(rule: Callable[..., None]) -> Callable[..., None]:
    def call(*args: Any, **kwargs: Any) -> None:
        data = SCRIPT_DATA.get()
        if data is None:
            raise RuntimeError(f"{rule.__name__}() can only be called from a script task")
        rule(data, *args, **kwargs)

    call.__name__ = rule.__name__
    call.__doc__ = rule.__doc__
    return call


def script_functions() -> dict[str, Callable[..., None]]:
    """The rules as the script environment offers them: called without the data."""
    return {name: _bound(rule) for name, rule in RULES.items()}
