"""Restricted script engine: checked, guarded, time-bounded scripts over JSON-only task data.

Every script or expression is checked by `safety` (once per distinct text, then the compiled code
is cached), runs with globals that hold only the task data and whose `__builtins__` are the small
helper set below, and is stopped by a trace function when it runs more lines or longer than the
limits allow. A stopped or failing script raises inside SpiffWorkflow's task run, so the task ends
in ERROR and can be retried; the process and the caller carry on. After a script, every task data
variable must be plain JSON (str, int, float, bool, None, list, dict with str keys).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from types import CodeType, FrameType
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.task import Task

from .errors import DataError
from .guards import CURRENT_RUN, MATH, Guards, RunBudget, ScriptLimitError, ScriptLimits
from .hooks import current_call
from .safety import SCRIPT_FILENAME, Mode, UnsafeScriptError, compile_checked
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


def check_json_data(data: Mapping[str, Any], max_nodes: int, where: str = "task data") -> None:
    """Raise DataError naming the first variable that is not plain JSON or is too large."""
    count = 0
    for name, value in data.items():
        stack: list[tuple[Any, str]] = [(value, name)]
        while stack:
            item, path = stack.pop()
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
            if kind is list:
                stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
                continue
            if kind is dict:
                for key, sub in item.items():
                    if type(key) is not str:
                        raise DataError(f"variable '{path}' in {where} has a non-text key "
                                        f"{key!r}; JSON object keys must be text")
                    stack.append((sub, f"{path}.{key}"))
                continue
            hint = ""
            if isinstance(item, (datetime, date)):
                hint = "; store it as text with .isoformat()"
            elif kind is tuple or kind is set or kind is frozenset:
                hint = "; convert it with list(...)"
            raise DataError(f"variable '{path}' in {where} holds a {kind.__name__}, which "
                            f"cannot be stored as JSON{hint}")


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


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluates and executes checked code with helper-only builtins and a time budget."""

    def __init__(self, limits: ScriptLimits | None = None, cache_size: int = 4096):
        self.limits = limits or ScriptLimits()
        self.guards = Guards(self.limits)
        self.builtins = self._make_builtins()
        self._cache: OrderedDict[tuple[str, str], CodeType] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        super().__init__({})

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
        }
        helpers.update({
            "__wf_add": g.add, "__wf_iadd": g.iadd, "__wf_mul": g.mul, "__wf_imul": g.imul,
            "__wf_pow": g.pow, "__wf_lshift": g.lshift, "__wf_mod": g.mod,
            "__wf_attr": g.attr, "__wf_deep": g.deep, "__wf_format": g.format_value,
            "__wf_sliced": g.sliced,
        })
        return helpers

    def code_for(self, source: str, mode: Mode) -> CodeType:
        """Checked and compiled code for `source`, compiled once per distinct text."""
        key = (mode, source)
        with self._lock:
            code = self._cache.get(key)
            if code is not None:
                self._cache.move_to_end(key)
                return code
        code = compile_checked(source, mode, self.limits)
        with self._lock:
            self._cache[key] = code
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return code

    def _run(self, code: CodeType, namespace: dict[str, Any]) -> Any:
        budget = _Budget(self.limits)
        token = CURRENT_RUN.set(RunBudget(self.limits.max_allocation))
        previous = sys.gettrace()
        sys.settrace(budget.on_call)
        try:
            return eval(code, namespace)  # noqa: S307 - checked, rewritten, bounded code
        finally:
            sys.settrace(previous)
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
        code = self.code_for(expression, "eval")
        result = self._run(code, self._namespace(context, external_context))
        if type(result) not in _SCALARS:
            # Results end up in task data (message payloads) or engine state (timers).
            check_json_data({"result": result}, self.limits.max_data_nodes,
                            "the expression result")
        return result

    def execute(self, script: str, context: dict[str, Any],
                external_context: Mapping[str, Any] | None = None) -> bool:
        code = self.code_for(script, "exec")
        namespace = self._namespace(context, external_context)
        self._run(code, namespace)
        del namespace["__builtins__"]
        for key in list(context):
            if key not in namespace:
                del context[key]
        external = external_context or {}
        for key, value in namespace.items():
            if key not in external or value is not external[key]:
                context[key] = value
        check_json_data(context, self.limits.max_data_nodes)
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
                f"error evaluating expression {expression!r}: {exc.__class__.__name__}: {exc}",
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
                message = f"script failed{where}: {exc.__class__.__name__}: {exc}"
            error_line = script.splitlines()[line - 1] if line else ""
            raise WorkflowTaskException(
                message, task=task, exception=exc, line_number=line, error_line=error_line
            ) from exc


def _script_line(exc: BaseException) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
