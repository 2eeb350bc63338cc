"""Timer values: accept ISO 8601 literals as the modeller writes them, and find due times.

The bpmn-js properties panel writes `PT30M`, `R2/PT10M` or `2026-01-01T08:00:00+08:00` bare,
while SpiffWorkflow evaluates timer text as a Python expression (so `PT30M` is an unknown name
and fails on the first engine step). `engine_expression` quotes a bare ISO 8601 value and leaves
a Python expression alone; `check_timer_text` says what is wrong with either. Date-times must
carry a time zone: the engine would otherwise read them in the server's local zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.task import Task

from .guards import ScriptLimits
from .safety import check_source, literal_value

TimerKind = Literal["timeDate", "timeDuration", "timeCycle"]

_DURATION = re.compile(
    r"^P(?=\d|T\d)(\d+(?:[.,]\d+)?Y)?(\d+(?:[.,]\d+)?M)?(\d+(?:[.,]\d+)?W)?(\d+(?:[.,]\d+)?D)?"
    r"(?:T(?=\d)(\d+(?:[.,]\d+)?H)?(\d+(?:[.,]\d+)?M)?(\d+(?:[.,]\d+)?S)?)?$"
)
_LOOKS_ISO = re.compile(r"^(?:R\d*/|P(?:\d|T\d)|\d{4}-)")


def _check_datetime(text: str) -> str | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return f"{text!r} is not an ISO 8601 date-time (e.g. 2026-01-01T08:00:00+08:00)"
    if moment.tzinfo is None:
        return (f"the date-time {text!r} has no time zone; write it with an offset, "
                f"e.g. {text}+08:00")
    return None


def _check_duration(text: str) -> str | None:
    if not _DURATION.match(text):
        return f"{text!r} is not an ISO 8601 duration (e.g. PT30M, P1D, PT1H30M)"
    try:
        TimerEventDefinition.parse_iso_duration(text)
    except Exception:
        return f"{text!r} is not an ISO 8601 duration (e.g. PT30M, P1D, PT1H30M)"
    return None


def _check_cycle(text: str) -> str | None:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not re.fullmatch(r"R\d*", parts[0]):
        return f"{text!r} is not an ISO 8601 repetition (e.g. R3/PT10M)"
    durations = 0
    for part in parts[1:]:
        if part.startswith("P"):
            problem = _check_duration(part)
            durations += 1
        else:
            problem = _check_datetime(part)
        if problem:
            return problem
    if durations != 1:
        return f"{text!r} needs exactly one duration (e.g. R3/PT10M)"
    return None


_CHECKS = {"timeDate": _check_datetime, "timeDuration": _check_duration,
           "timeCycle": _check_cycle}


def is_iso_literal(text: str) -> bool:
    return bool(_LOOKS_ISO.match(text.strip()))


def check_timer_text(kind: TimerKind, text: str | None, limits: ScriptLimits) -> list[str]:
    """Problems with a timer value: an ISO 8601 literal or a Python expression."""
    if text is None or not text.strip():
        return [f"the timer has no value; write an ISO 8601 {kind[4:].lower()}, e.g. "
                + {"timeDate": "2026-01-01T08:00:00+08:00", "timeDuration": "PT30M",
                   "timeCycle": "R3/PT10M"}[kind]]
    value = text.strip()
    if is_iso_literal(value):
        problem = _CHECKS[kind](value)
        return [problem] if problem else []
    issues = check_source(value, "eval", limits)
    if issues:
        return [f"timer expression: {i.message}" for i in issues]
    try:
        constant = literal_value(value)
    except (ValueError, SyntaxError):
        return []  # computed at run time; the script engine checks the result then
    if isinstance(constant, str):
        problem = _CHECKS[kind](constant.strip())
        return [problem] if problem else []
    return [f"a timer value must be ISO 8601 text, not {constant!r}"]


def engine_expression(text: str | None) -> str | None:
    """The expression SpiffWorkflow should evaluate for timer text (quotes bare ISO values)."""
    if text is None:
        return None
    value = text.strip()
    return repr(value) if is_iso_literal(value) else value


def check_timer_result(task: Task, expression: str, result: Any) -> None:
    """Raise ValueError if a timer expression of `task` evaluated to an unusable value.

    Called by the script engine for every expression; only acts when `expression` is one of
    the task's timer expressions. Literal values were checked at load; this covers computed ones.
    """
    for definition in timer_definitions(getattr(task.task_spec, "event_definition", None)):
        if definition.expression != expression:
            continue
        if not isinstance(result, str):
            raise ValueError(f"a timer expression must give ISO 8601 text, not {result!r}")
        kind: TimerKind = (
            "timeDate" if isinstance(definition, TimeDateEventDefinition)
            else "timeCycle" if isinstance(definition, CycleTimerEventDefinition)
            else "timeDuration"
        )
        problem = _CHECKS[kind](result.strip())
        if problem:
            raise ValueError(problem)


def timer_definitions(definition: Any) -> list[TimerEventDefinition]:
    """Timer definitions of an event definition (event-based gateways hold several)."""
    if isinstance(definition, TimerEventDefinition):
        return [definition]
    if isinstance(definition, MultipleEventDefinition):
        return [d for d in definition.event_definitions if isinstance(d, TimerEventDefinition)]
    return []


def task_due_time(task: Task) -> datetime | None:
    """When a waiting timer task fires next (aware UTC), from its evaluated event value."""
    due: datetime | None = None
    value = task.internal_data.get("event_value")
    for definition in timer_definitions(getattr(task.task_spec, "event_definition", None)):
        moment = _due_from_value(definition, value)
        if moment is not None and (due is None or moment < due):
            due = moment
    return due


def _due_from_value(definition: TimerEventDefinition, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        if isinstance(definition, CycleTimerEventDefinition):
            if not isinstance(value, dict) or value.get("cycles") == 0:
                return None
            return _plain_utc(datetime.fromisoformat(value["next"]))
        if isinstance(definition, DurationTimerEventDefinition):
            return _plain_utc(datetime.fromisoformat(value))
        if isinstance(definition, TimeDateEventDefinition):
            moment = TimerEventDefinition.parse_time_or_duration(value)
            return _plain_utc(moment) if isinstance(moment, datetime) else None
    except (TypeError, ValueError, KeyError):
        return None
    return None


def _plain_utc(moment: datetime) -> datetime:
    """A plain `datetime` in UTC (the engine's timer module hands out a clock-aware subclass)."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                    utc.microsecond, UTC)


def rearm(task: Task, old_text: str, new_text: str) -> None:
    """Recompute a waiting timer after the values its expression reads have changed.

    The new due time counts from the moment the timer was armed, as if the new values had held
    from the start: a duration timer armed at A with PT2H that becomes PT5M is due at A+5min
    (already past, it fires at the next refresh). A cycle keeps the count of occurrences that
    already fired. `old_text` and `new_text` are the expression's value before and after.
    Called inside an engine call; the engine's clock is moved to the arming moment while the
    new value is computed, so relative starts count from there too.
    """
    from .hooks import current_call, engine_call

    definitions = timer_definitions(getattr(task.task_spec, "event_definition", None))
    if len(definitions) != 1:
        return  # several timers share one stored value: leave them as armed
    definition = definitions[0]
    value = task.internal_data.get("event_value")
    call = current_call()
    if value is None or call is None:
        return  # not armed yet: it will read the new values when it is
    if isinstance(definition, TimeDateEventDefinition):
        task.internal_data["event_value"] = new_text
        task.internal_data.pop("event_fired", None)
        return
    if isinstance(definition, DurationTimerEventDefinition):
        old_due = TimerEventDefinition.get_datetime(value)
        old_delta = TimerEventDefinition.get_timedelta_from_start(
            TimerEventDefinition.parse_iso_duration(old_text), old_due)
        armed = old_due - old_delta
        new_delta = TimerEventDefinition.get_timedelta_from_start(
            TimerEventDefinition.parse_iso_duration(new_text), armed)
        task.internal_data["event_value"] = (armed + new_delta).isoformat()
        task.internal_data.pop("event_fired", None)
        return
    if isinstance(definition, CycleTimerEventDefinition) and isinstance(value, dict):
        old_cycles, old_start, old_period = TimerEventDefinition.parse_iso_recurring_interval(
            old_text)
        remaining = int(value.get("cycles", 0))
        period = timedelta(seconds=float(value.get("duration", old_period.total_seconds())))
        fired = max(old_cycles - remaining, 0) if old_cycles >= 0 else \
            max(round((datetime.fromisoformat(value["next"]) - old_start) / period), 0)
        # A start-less cycle was armed one period before its first occurrence.
        first = datetime.fromisoformat(value["next"]) - fired * period
        armed = first - period
        with engine_call(armed, call.ids, call.listener):
            cycles, start, new_period = TimerEventDefinition.parse_iso_recurring_interval(
                new_text)
        left = cycles - fired if cycles >= 0 else -1
        task.internal_data["event_value"] = {
            "cycles": max(left, 0) if cycles >= 0 else -1,
            "next": (start + fired * new_period).isoformat(),
            "duration": new_period.total_seconds()}
        task.internal_data.pop("event_fired", None)
