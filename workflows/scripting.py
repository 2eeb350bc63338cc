"""Restricted script engine: checked, guarded, time-bounded scripts over JSON-only task data.

Every script or expression is checked by `safety` (once per distinct text, then the compiled code
is cached), runs with globals that hold only the task data and whose `__builtins__` are the small
helper set below, and is stopped by a trace function when it runs more lines or longer than the
limits allow. Unless `ScriptLimits.isolate` is off, everything but plain comparisons runs that
way inside a supervised worker process (`sandbox`), killed when it overruns its time even in one
C-level call. A stopped or failing script raises inside SpiffWorkflow's task run, so the task
ends in ERROR and can be retried; the process and the caller carry on. After a script, every
task data variable must be plain JSON (str, int, float, bool, None, list, dict with str keys),
within the node, depth and byte limits.
"""

from __future__ import annotations

import hashlib
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from types import CodeType, FrameType
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.task import Task

from . import sandbox
from .errors import DataError
from .guards import CURRENT_RUN, MATH, Guards, RunBudget, ScriptLimitError, ScriptLimits
from .hooks import current_call
from .rules import SCRIPT_DATA, script_functions
from .safety import (
    SCRIPT_FILENAME,
    Mode,
    ScriptIssue,
    UnsafeScriptError,
    compile_checked_plain,
)
from .sandbox import encode
from .timers import check_timer_result

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


class ScriptTimeout(ScriptLimitError):
    """A script ran past its line budget or deadline and was stopped."""


def _now() -> datetime:
    """The engine call's time (the injected clock), as an aware UTC datetime."""
    call = current_call()
    return call.now if call is not None else datetime.now(UTC)


def _today(tz: timezone = SHANGHAI) -> date:
    return _now().astimezone(tz).date()


def _parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; write e.g. {text}+08:00")
    return value


def check_json_data(data: Mapping[str, Any], max_nodes: int, where: str = "task data",
                    max_depth: int = 64) -> None:
    """Raise DataError naming the first variable that is not plain JSON or is too large."""
    count = 0
    for name, value in data.items():
        stack: list[tuple[Any, str, int]] = [(value, name, 1)]
        while stack:
            item, path, depth = stack.pop()
            count += 1
            if count > max_nodes:
                raise DataError(f"{where} is too large (more than {max_nodes} values); "
                                f"'{name}' is where the limit was reached")
            kind = type(item)
            if kind is str or kind is bool or kind is int or item is None:
                continue
            if kind is float:
                if not math.isfinite(item):
                    raise DataError(f"variable '{path}' in {where} is {item}, which JSON "
                                    "cannot store")
                continue
            if depth >= max_depth and (kind is list or kind is dict) and item:
                raise DataError(f"variable '{name}' in {where} is nested more than {max_depth} "
                                "levels deep")
            if kind is list:
                stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
                continue
            if kind is dict:
                for key, sub in item.items():
                    if type(key) is not str:
                        raise DataError(f"variable '{path}' in {where} has a non-text key "
                                        f"{key!r}; JSON object keys must be text")
                    stack.append((sub, f"{path}.{key}", depth + 1))
                continue
            hint = ""
            if isinstance(item, (datetime, date)):
                hint = "; store it as text with .isoformat()"
            elif kind is tuple or kind is set or kind is frozenset:
                hint = "; convert it with list(...)"
            raise DataError(f"variable '{path}' in {where} holds a {kind.__name__}, which "
                            f"cannot be stored as JSON{hint}")


def encode_data(data: Mapping[str, Any], limits: ScriptLimits, where: str = "task data") -> bytes:
    """`data` (already checked with check_json_data) as compact JSON bytes; DataError naming
    the largest variable if that is more than `max_data_bytes`."""
    body = encode(data)
    if len(body) > limits.max_data_bytes:
        sizes = {name: len(encode(value)) for name, value in data.items()}
        largest = max(sizes, key=lambda name: sizes[name])
        raise DataError(f"{where} would have {len(body)} bytes as JSON; the limit is "
                        f"{limits.max_data_bytes} bytes per task; variable '{largest}' holds "
                        f"{sizes[largest]} of them")
    return body


def encode_result(value: Any, limits: ScriptLimits) -> bytes:
    """An expression's result as JSON bytes, within `max_data_bytes`."""
    body = encode(value)
    if len(body) > limits.max_data_bytes:
        raise DataError(f"the expression result has {len(body)} bytes as JSON; the limit is "
                        f"{limits.max_data_bytes}")
    return body


def check_data(data: Mapping[str, Any], limits: ScriptLimits, where: str) -> bytes:
    """Plain JSON within the node, depth and byte limits (start data, forms, payloads).
    Returns the data as JSON: `json.loads` of it is a deep copy, faster than `deepcopy`."""
    check_json_data(data, limits.max_data_nodes, where, limits.max_data_depth)
    return encode_data(data, limits, where)


_SCALARS = frozenset({bool, int, str, type(None)})


class _Budget:
    """Trace function that stops script frames after a line budget or a deadline."""

    __slots__ = ("lines_left", "deadline", "limits")

    def __init__(self, limits: ScriptLimits):
        self.limits = limits
        self.lines_left = limits.max_lines
        self.deadline = time.perf_counter() + limits.max_seconds

    def on_call(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        # Only script code (and its comprehensions) is traced; guard functions are bounded.
        if frame.f_code.co_filename == SCRIPT_FILENAME:
            return self.on_line
        return None

    def on_line(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event == "line":
            self.lines_left -= 1
            if self.lines_left < 0:
                raise ScriptTimeout(
                    f"the script was stopped after {self.limits.max_lines} lines; "
                    "loops in handbook scripts must be short"
                )
            if not self.lines_left & 7 and time.perf_counter() > self.deadline:
                raise ScriptTimeout(
                    f"the script was stopped after {self.limits.max_seconds} s; "
                    "loops in handbook scripts must be short"
                )
        return self.on_line


@dataclass(frozen=True, slots=True)
class Checked:
    """Checked, rewritten and compiled text; `plain` if it may run outside a worker."""

    code: CodeType
    plain: bool


class LocalEvaluator:
    """Evaluates and executes checked code in this process, with helper-only builtins and a
    time budget checked between lines (the worker process runs everything through one)."""

    def __init__(self, limits: ScriptLimits | None = None, cache_size: int = 4096):
        self.limits = limits or ScriptLimits()
        self.guards = Guards(self.limits)
        self.builtins = self._make_builtins()
        self._cache: OrderedDict[tuple[str, str], Checked] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _make_builtins(self) -> dict[str, Any]:
        g = self.guards
        helpers: dict[str, Any] = {
            "abs": abs, "all": all, "any": any, "bool": bool, "divmod": divmod,
            "enumerate": enumerate, "float": float, "int": int, "len": len,
            "reversed": reversed, "round": round, "zip": zip,
            "list": g.walking(list), "tuple": g.walking(tuple),
            "dict": g.walking(dict), "set": g.walking(set), "str": g.walking(str),
            "max": g.walking(max), "min": g.walking(min), "sorted": g.walking(sorted),
            "range": g.safe_range, "sum": g.safe_sum, "pow": g.pow,
            "math": MATH, "now": _now, "today": _today, "parse_datetime": _parse_datetime,
            "datetime": datetime, "date": date, "timedelta": timedelta, "timezone": timezone,
            "UTC": UTC, "SHANGHAI": SHANGHAI, "True": True, "False": False, "None": None,
            # The shared handbook rules (see `rules`), called from scripts in one line.
            **script_functions(),
        }
        helpers.update({
            "__wf_add": g.add, "__wf_iadd": g.iadd, "__wf_mul": g.mul, "__wf_imul": g.imul,
            "__wf_pow": g.pow, "__wf_lshift": g.lshift, "__wf_mod": g.mod,
            "__wf_attr": g.attr, "__wf_deep": g.deep, "__wf_format": g.format_value,
            "__wf_sliced": g.sliced,
        })
        return helpers

    def checked(self, source: str, mode: Mode) -> Checked:
        """Checked and compiled code for `source`, compiled once per distinct text."""
        key = (mode, source)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        code, plain = compile_checked_plain(source, mode, self.limits)
        found = Checked(code, plain)
        with self._lock:
            self._cache[key] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return found

    def code_for(self, source: str, mode: Mode) -> CodeType:
        return self.checked(source, mode).code

    def _run(self, code: CodeType, namespace: dict[str, Any], script: bool = False) -> Any:
        budget = _Budget(self.limits)
        token = CURRENT_RUN.set(RunBudget(self.limits.max_allocation))
        # Only a script task's script may change its data through a shared rule.
        data_token = SCRIPT_DATA.set(namespace if script else None)
        previous = sys.gettrace()
        sys.settrace(budget.on_call)
        try:
            return eval(code, namespace)  # noqa: S307 - checked, rewritten, bounded code
        finally:
            sys.settrace(previous)
            SCRIPT_DATA.reset(data_token)
            CURRENT_RUN.reset(token)

    def _namespace(self, context: Mapping[str, Any],
                   external: Mapping[str, Any] | None) -> dict[str, Any]:
        namespace: dict[str, Any] = {}
        if external:
            namespace.update(external)
        namespace.update(context)
        namespace["__builtins__"] = self.builtins
        return namespace

    def evaluate(self, expression: str, context: Mapping[str, Any],
                 external_context: Mapping[str, Any] | None = None) -> Any:
        return self.evaluate_code(self.checked(expression, "eval").code, context,
                                  external_context)

    def evaluate_code(self, code: CodeType, context: Mapping[str, Any],
                      external_context: Mapping[str, Any] | None = None) -> Any:
        result = self._run(code, self._namespace(context, external_context))
        if type(result) not in _SCALARS:
            # Results end up in task data (message payloads) or engine state (timers).
            check_json_data({"result": result}, self.limits.max_data_nodes,
                            "the expression result", self.limits.max_data_depth)
        return result

    def execute(self, script: str, context: dict[str, Any],
                external_context: Mapping[str, Any] | None = None) -> None:
        code = self.checked(script, "exec").code
        namespace = self._namespace(context, external_context)
        self._run(code, namespace, script=True)
        del namespace["__builtins__"]
        for key in list(context):
            if key not in namespace:
                del context[key]
        external = external_context or {}
        for key, value in namespace.items():
            if key not in external or value is not external[key]:
                context[key] = value
        check_json_data(context, self.limits.max_data_nodes, max_depth=self.limits.max_data_depth)


class ScriptError(Exception):
    """An error a script raised in a worker process, carried back by type name and message."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name


class _Isolated:
    """Sends evaluations to a worker of the `sandbox` pool and turns its answers back into
    values or the exceptions a local run would have raised."""

    def __init__(self, limits: ScriptLimits):
        self.limits = limits
        self.pool = sandbox.pool(limits.max_memory_mb, limits.max_workers)
        payload = asdict(limits)
        self.setup = (hashlib.sha256(repr(sorted(payload.items())).encode()).hexdigest()[:16],
                      payload)

    def call(self, op: str, source: str, context: Mapping[str, Any],
             external: Mapping[str, Any] | None) -> Any:
        call = current_call()
        now = call.now if call is not None else datetime.now(UTC)
        # The worker's own trace budget stops Python loops with a line number; past the
        # grace the worker is killed (one C call), and the kernel's CPU limit backs that up.
        seconds = self.limits.max_seconds + self.limits.kill_grace_seconds
        request = {"op": op, "source": source, "context": context, "external": external or {},
                   "now": now.isoformat(), "limits": self.setup[0], "seconds": seconds}
        what = "script" if op == "exec" else "expression"
        try:
            reply = self.pool.call(request, timeout=seconds, setup=self.setup,
                                   max_reply=2 * self.limits.max_data_bytes + 65536)
        except (TypeError, ValueError) as exc:
            raise DataError(f"the task data cannot be sent as JSON: {exc}") from None
        except sandbox.WorkerFailure as exc:
            if exc.reason in ("timeout", "cpu"):
                raise ScriptTimeout(
                    f"the {what} was stopped after {self.limits.max_seconds:g} s; one "
                    "operation in it ran too long (for example building or sorting a very "
                    "large collection)") from None
            raise ScriptLimitError(f"the {what} stopped the process that ran it (exit code "
                                   f"{exc.exitcode})") from None
        if reply.get("ok"):
            return reply
        error = reply["error"]
        kind, message = error["kind"], error.get("message", "")
        if kind == "memory":
            raise ScriptLimitError(f"the {what} needed more than {self.limits.max_memory_mb} MB "
                                   "of memory")
        failure: Exception
        if kind == "timeout":
            failure = ScriptTimeout(message)
        elif kind == "limit":
            failure = ScriptLimitError(message)
        elif kind == "unsafe":
            failure = UnsafeScriptError([ScriptIssue(error.get("line"), message)])
        elif kind == "data":
            failure = DataError(message)
        else:
            failure = ScriptError(error["type"], message)
        # The script line where it failed, for the task failure (see _script_line).
        failure.script_line = error.get("line")  # type: ignore[union-attr]
        raise failure


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """The engine's script environment: checks every text first, runs plain comparisons here
    and everything else in a worker process (or here too when isolation is off)."""

    def __init__(self, limits: ScriptLimits | None = None, cache_size: int = 4096):
        self.limits = limits or ScriptLimits()
        self.local = LocalEvaluator(self.limits, cache_size)
        self.isolated = _Isolated(self.limits) if self.limits.isolate else None
        super().__init__({})

    def code_for(self, source: str, mode: Mode) -> CodeType:
        """Checked and compiled code for `source` (the allow-list is always the first line)."""
        return self.local.code_for(source, mode)

    def evaluate(self, expression: str, context: Mapping[str, Any],
                 external_context: Mapping[str, Any] | None = None) -> Any:
        checked = self.local.checked(expression, "eval")
        if self.isolated is None or checked.plain:
            return self.local.evaluate_code(checked.code, context, external_context)
        return self.isolated.call("eval", expression, context, external_context)["value"]

    def execute(self, script: str, context: dict[str, Any],
                external_context: Mapping[str, Any] | None = None) -> bool:
        if self.isolated is None or self.local.checked(script, "exec").plain:
            self.local.execute(script, context, external_context)
            encode_data(context, self.limits)
            return True
        data = self.isolated.call("exec", script, context, external_context)["data"]
        # The engine holds this dict: change it in place.
        context.clear()
        context.update(data)
        return True

    def call_service(self, context: Mapping[str, Any], **kwargs: Any) -> Any:
        raise ScriptLimitError("service tasks are not supported")


class RestrictedScriptEngine(PythonScriptEngine):
    """SpiffWorkflow script engine that uses `RestrictedEnvironment` and explains failures."""

    environment: RestrictedEnvironment

    def __init__(self, limits: ScriptLimits | None = None):
        super().__init__(environment=RestrictedEnvironment(limits))

    @property
    def limits(self) -> ScriptLimits:
        return self.environment.limits

    def validate(self, expression: str) -> None:
        self.environment.code_for(expression, "eval")

    def evaluate(self, task: Task, expression: str,
                 external_context: Mapping[str, Any] | None = None) -> Any:
        try:
            result = self.environment.evaluate(expression, task.data, external_context)
            check_timer_result(task, expression, result)
            return result
        except (ScriptLimitError, UnsafeScriptError, DataError) as exc:
            raise WorkflowTaskException(
                f"expression {expression!r} was refused: {exc}", task=task, exception=exc
            ) from exc
        except Exception as exc:
            raise WorkflowTaskException(
                f"error evaluating expression {expression!r}: {_type_name(exc)}: {exc}",
                task=task, exception=exc,
            ) from exc

    def execute(self, task: Task, script: str,
                external_context: Mapping[str, Any] | None = None) -> bool:
        try:
            return self.environment.execute(script, task.data, external_context)
        except Exception as exc:
            line = _script_line(exc)
            where = f" (script line {line})" if line else ""
            if isinstance(exc, (ScriptLimitError, UnsafeScriptError, DataError)):
                message = f"script refused{where}: {exc}"
            else:
                message = f"script failed{where}: {_type_name(exc)}: {exc}"
            error_line = script.splitlines()[line - 1] if line else ""
            raise WorkflowTaskException(
                message, task=task, exception=exc, line_number=line, error_line=error_line
            ) from exc


def _type_name(exc: BaseException) -> str:
    return exc.type_name if isinstance(exc, ScriptError) else exc.__class__.__name__


def _script_line(exc: BaseException) -> int | None:
    carried = getattr(exc, "script_line", None)
    if isinstance(carried, int):
        return carried
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
