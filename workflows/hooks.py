"""Thread-safe hooks into SpiffWorkflow: injected clock, deterministic task ids, state-change feed.

SpiffWorkflow reads the wall clock directly (`datetime.now` in its timer code, `time.time` for
`Task.last_state_change`), draws task ids from `uuid4`, and changes task states in one place
(`Task._set_state`). Each of those module attributes is replaced once by a function that consults
a context variable: inside an engine call (see `engine_call`) it uses the call's fixed time, the
instance's id source and the call's recorder; outside one it behaves exactly like the original, so
plain SpiffWorkflow code in the same process is unaffected. Context variables keep concurrent calls
in different threads (or tasks) apart.

One more replacement keeps the engine's own work on task data linear: `DeepMerge.merge_array`
(used whenever a task takes over changed data, e.g. at every join) compared each new list item
with every earlier one, and hashed integers whose hashes an attacker can make collide. Thirty
thousand small lists set by two parallel branches cost half a minute at the join, in the
server's process. `_merge_array` gives the same result in linear time, with keys whose hashes
come from text (randomised per process) for plain JSON values, and falls back to the original
for anything else.
"""

from __future__ import annotations

import threading
import time as _time
import uuid
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from types import ModuleType
from typing import Any, Protocol

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _spiff_timer
import SpiffWorkflow.task as _spiff_task
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge


class StateListener(Protocol):
    def on_state_change(self, task: Task, old: int, new: int) -> None: ...


class TaskIdSource:
    """Task ids derived from the instance id and a counter, so a replay creates the same ids."""

    __slots__ = ("namespace", "counter")

    def __init__(self, namespace: uuid.UUID, counter: int = 0):
        self.namespace = namespace
        self.counter = counter

    def next_id(self) -> uuid.UUID:
        self.counter += 1
        return uuid.uuid5(self.namespace, str(self.counter))


@dataclass(slots=True)
class EngineCall:
    """What the hooks need to know while one API call runs the engine."""

    now: datetime
    timestamp: float
    ids: TaskIdSource | None
    listener: StateListener | None


_ACTIVE: ContextVar[EngineCall | None] = ContextVar("workflows_engine_call", default=None)


class _ClockedDatetime(datetime):
    """`datetime` whose now() answers the engine call's time (timer code calls datetime.now)."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _ClockedDatetime:
        call = _ACTIVE.get()
        if call is None:
            real = datetime.now(tz)
        else:
            real = call.now if tz is None else call.now.astimezone(tz)
        return cls(
            real.year, real.month, real.day, real.hour, real.minute, real.second,
            real.microsecond, real.tzinfo, fold=real.fold,
        )


class _ClockedTimeModule(ModuleType):
    """Stand-in for the `time` module inside SpiffWorkflow.task (used for last_state_change)."""

    def __init__(self) -> None:
        super().__init__("time")

    def time(self) -> float:
        call = _ACTIVE.get()
        return _time.time() if call is None else call.timestamp

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


def _task_uuid4() -> uuid.UUID:
    call = _ACTIVE.get()
    if call is None or call.ids is None:
        return uuid.uuid4()
    return call.ids.next_id()


_original_set_state = Task._set_state
_original_child_added = Task._child_added_notify


def _set_state(self: Task, value: int) -> None:
    call = _ACTIVE.get()
    if call is None or call.listener is None or value == self._state:
        _original_set_state(self, value)
        return
    old = self._state
    _original_set_state(self, value)
    call.listener.on_state_change(self, old, value)


def _child_added_notify(self: Task, child: Task) -> None:
    _original_child_added(self, child)
    call = _ACTIVE.get()
    if call is not None and call.listener is not None:
        # A task born READY or WAITING never passes through _set_state for that state.
        call.listener.on_state_change(child, 0, child._state)


_original_merge_array = DeepMerge.merge_array
_JSON_SCALARS = (str, int, float, bool, type(None))


def _json_key(value: Any) -> Hashable:
    """A key equal for two JSON values exactly when they are equal (`==`), hashed by text."""
    kind = type(value)
    if kind is str:
        return ("s", value)
    if kind is int or kind is bool:
        return ("n", hex(value))
    if kind is float:
        if value.is_integer():
            return ("n", hex(int(value)))
        if value != value:
            return ("nan", id(value))  # equal only to itself, as in a list comparison
        return ("f", repr(value))
    if value is None:
        return ("z",)
    if kind is list:
        return ("l", tuple(_json_key(item) for item in value))
    if kind is dict:
        return ("d", frozenset((_json_key(k), _json_key(v)) for k, v in value.items()))
    raise TypeError(kind.__name__)


def _is_json(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if depth > 200:
        return False
    if kind is list:
        return all(_is_json(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(k) is str and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _merge_array(a: list[Any], b: list[Any], path: list[str] | None = None) -> None:
    """`DeepMerge.merge_array` in linear time (same result) for plain JSON lists."""
    if not (_is_json(a) and _is_json(b)):
        _original_merge_array(a, b, path)
        return
    # Dicts of `a` are never compared (dict items of `b` take the other branch), and JSON
    # values that hash never equal ones that do not: one set of keys serves both lists the
    # original keeps.
    seen = {_json_key(item) for item in a if type(item) is not dict}
    for idx, val in enumerate(b):
        if isinstance(val, dict):
            if len(a) > idx:
                a[idx] = DeepMerge.merge(a[idx], val, path + [str(idx)])  # type: ignore[operator]
            else:
                a.append(val)
            continue
        key = _json_key(val)
        if key in seen:
            continue
        seen.add(key)
        a.append(val)
    del a[len(b):]


_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Patch SpiffWorkflow once per process; cheap to call again."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        _spiff_timer.datetime = _ClockedDatetime  # type: ignore[misc]
        _spiff_task.time = _ClockedTimeModule()  # type: ignore[assignment]
        _spiff_task.uuid4 = _task_uuid4  # type: ignore[assignment]
        Task._set_state = _set_state  # type: ignore[method-assign]
        Task._child_added_notify = _child_added_notify  # type: ignore[method-assign]
        DeepMerge.merge_array = staticmethod(_merge_array)  # type: ignore[assignment]
        _installed = True


@contextmanager
def engine_call(
    now: datetime,
    ids: TaskIdSource | None = None,
    listener: StateListener | None = None,
) -> Iterator[EngineCall]:
    """Run the enclosed engine work at the fixed time `now` (aware), with ids and listener."""
    install()
    now_utc = now.astimezone(UTC)
    call = EngineCall(now_utc, now_utc.timestamp(), ids, listener)
    token = _ACTIVE.set(call)
    try:
        yield call
    finally:
        _ACTIVE.reset(token)


def current_call() -> EngineCall | None:
    """The engine call in progress in this context, if any."""
    return _ACTIVE.get()
