"""Run-time guards that handbook scripts call instead of operators and attribute access.

The AST rewrite in `safety` turns `a * b` into `__wf_mul(a, b)`, `x.y` into `__wf_attr(x, "y")`
and so on. A guard refuses what would allocate or compute far more than a handbook needs (a
string of 10**12 characters, a 2**(2**40) integer, a comparison that walks an exponentially
aliased list) before CPython starts the work in C, where no time budget can interrupt it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import partial
from typing import Any


class ScriptLimitError(Exception):
    """A script tried something outside the limits; the message tells the designer what."""


class RunBudget:
    """What one script run may still allocate (elements of containers, characters of text).

    Each guarded operation is bounded on its own, but a comprehension can repeat one up to the
    line budget; the running total stops `[[0] * 100000 for i in range(100000)]` long before
    it fills memory.
    """

    __slots__ = ("allocated", "cap")

    def __init__(self, cap: int):
        self.allocated = 0
        self.cap = cap

    def exceeded(self) -> ScriptLimitError:
        return ScriptLimitError(
            f"the script created more than {self.cap} elements and characters in total"
        )


CURRENT_RUN: ContextVar[RunBudget | None] = ContextVar("workflows_script_run", default=None)


def charge(size: int) -> None:
    """Count `size` new elements/characters against the running script's budget."""
    budget = CURRENT_RUN.get()
    if budget is None:
        return
    budget.allocated += size
    if budget.allocated > budget.cap:
        raise budget.exceeded()


def charge_result(value: Any) -> Any:
    """Charge the size of a freshly created value and return it."""
    kind = type(value)
    if kind is str or kind in _CONTAINERS:
        charge(len(value))
    elif kind is int and value.bit_length() > 64:
        charge(value.bit_length() // 64)
    return value


@dataclass(frozen=True)
class ScriptLimits:
    """Bounds for handbook scripts and expressions (checked at load and at run time).

    Text: `max_source_chars` characters, `max_nodes` syntax nodes, `max_depth` nesting levels;
    constant expressions are folded at check time (to refuse `9**9**9` early) within
    `max_constant_size` characters and elements in total, and only after those three passed.

    Run time, per evaluation: `max_seconds` of wall-clock time and `max_lines` executed lines
    (the trace budget, between lines), `max_sequence` / `max_string` / `max_int_bits` /
    `max_range` per value, `max_allocation` elements and characters created in total.

    Task data (after every script, in form data, start data and event payloads): plain JSON with
    at most `max_data_nodes` values, `max_data_depth` levels and `max_data_bytes` bytes of JSON.

    Isolation (`isolate`, on by default): scripts and expressions other than plain comparisons
    run in a supervised worker process (`sandbox`) limited to `max_memory_mb` of address space
    and killed `kill_grace_seconds` after `max_seconds` if it has not answered, so even one
    long C-level call cannot outlive its budget; at most `max_workers` run at once per process.
    """

    max_source_chars: int = 20_000
    max_nodes: int = 3_000
    max_depth: int = 40
    max_constant_size: int = 1_000_000
    max_seconds: float = 1.0
    max_lines: int = 200_000
    max_sequence: int = 100_000
    max_string: int = 1_000_000
    max_int_bits: int = 16_384
    max_range: int = 100_000
    max_data_nodes: int = 100_000
    max_data_depth: int = 64
    max_data_bytes: int = 1_000_000
    max_format_width: int = 1_000
    max_allocation: int = 5_000_000
    isolate: bool = True
    max_memory_mb: int = 512
    kill_grace_seconds: float = 0.5
    max_workers: int = 4


class MathFunctions:
    """The `math` name scripts see: a few pure functions, no module object to walk."""

    floor = staticmethod(math.floor)
    ceil = staticmethod(math.ceil)
    trunc = staticmethod(math.trunc)
    sqrt = staticmethod(math.sqrt)
    fabs = staticmethod(math.fabs)
    log = staticmethod(math.log)
    log10 = staticmethod(math.log10)
    exp = staticmethod(math.exp)
    isclose = staticmethod(math.isclose)
    isfinite = staticmethod(math.isfinite)
    pi = math.pi
    e = math.e


MATH = MathFunctions()

_CONTAINERS = (list, tuple, dict, set, frozenset)
_SEQUENCES = (str, list, tuple)

# Attribute allow-list per exact type. Everything else (type objects, functions, generators,
# frames, modules) has no readable attributes at all.
ALLOWED_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: frozenset({
        "lower", "upper", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines",
        "startswith", "endswith", "replace", "join", "find", "rfind", "index", "rindex",
        "count", "isdigit", "isalpha", "isalnum", "isnumeric", "isdecimal", "isspace",
        "title", "capitalize", "casefold", "zfill", "ljust", "rjust", "center", "partition",
        "rpartition", "removeprefix", "removesuffix",
    }),
    list: frozenset({
        "append", "extend", "insert", "pop", "remove", "index", "count", "sort", "reverse",
        "copy", "clear",
    }),
    tuple: frozenset({"index", "count"}),
    dict: frozenset({
        "get", "keys", "values", "items", "pop", "setdefault", "update", "copy", "clear",
    }),
    set: frozenset({
        "add", "remove", "discard", "union", "intersection", "difference", "issubset",
        "issuperset", "isdisjoint", "copy", "pop", "update", "clear",
    }),
    frozenset: frozenset({
        "union", "intersection", "difference", "issubset", "issuperset", "isdisjoint", "copy",
    }),
    int: frozenset({"bit_length"}),
    float: frozenset({"is_integer"}),
    datetime: frozenset({
        "year", "month", "day", "hour", "minute", "second", "microsecond", "isoformat",
        "date", "time", "weekday", "isoweekday", "astimezone", "replace", "timestamp",
        "strftime", "utcoffset", "tzinfo",
    }),
    date: frozenset({"year", "month", "day", "isoformat", "weekday", "isoweekday", "replace",
                     "strftime"}),
    time: frozenset({"hour", "minute", "second", "microsecond", "isoformat"}),
    timedelta: frozenset({"days", "seconds", "microseconds", "total_seconds"}),
    timezone: frozenset({"utcoffset"}),
    MathFunctions: frozenset({
        "floor", "ceil", "trunc", "sqrt", "fabs", "log", "log10", "exp", "isclose", "isfinite",
        "pi", "e",
    }),
}

ALL_ALLOWED_ATTRIBUTES: frozenset[str] = frozenset().union(*ALLOWED_ATTRIBUTES.values())


class Guards:
    """Guard functions bound to one set of limits."""

    def __init__(self, limits: ScriptLimits):
        self.limits = limits
        # Methods that can grow their result far beyond their input: checked before calling.
        self._prechecks: dict[tuple[type, str], Callable[..., None]] = {
            (str, "replace"): self._check_replace,
            (str, "join"): self._check_join,
            (str, "zfill"): self._check_pad,
            (str, "ljust"): self._check_pad,
            (str, "rjust"): self._check_pad,
            (str, "center"): self._check_pad,
            (datetime, "strftime"): self._check_strftime,
            (date, "strftime"): self._check_strftime,
        }
        self._growing = {("extend", list), ("update", dict), ("update", set), ("union", set),
                         ("union", frozenset)}

    # -- size accounting -------------------------------------------------------------------

    def deep(self, value: Any) -> Any:
        """Return `value` unchanged after making sure walking it is bounded."""
        if type(value) in _CONTAINERS:
            self.bounded_size(value)
        return value

    def bounded_size(self, value: Any) -> int:
        """Count nodes (aliases counted every time they appear) up to the data-node limit."""
        cap = self.limits.max_data_nodes
        count = 0
        stack = [value]
        while stack:
            item = stack.pop()
            count += 1
            if count > cap:
                raise ScriptLimitError(
                    f"a value has more than {cap} elements (counting nested and repeated ones)"
                )
            kind = type(item)
            if kind is dict:
                stack.extend(item.keys())
                stack.extend(item.values())
            elif kind in (list, tuple, set, frozenset):
                stack.extend(item)
        return count

    def _check_len(self, length: int, what: Any) -> None:
        cap = self.limits.max_string if isinstance(what, str) else self.limits.max_sequence
        if length > cap:
            raise ScriptLimitError(f"the result would have {length} elements; the limit is {cap}")

    # -- operators ---------------------------------------------------------------------------

    def add(self, a: Any, b: Any) -> Any:
        if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
            self._check_len(len(a) + len(b), a)
        return charge_result(a + b)

    def iadd(self, a: Any, b: Any) -> Any:
        if isinstance(a, list) and not isinstance(b, _SEQUENCES):
            b = list(b)
        if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
            self._check_len(len(a) + len(b), a)
            charge(len(b))
        return operator.iadd(a, b)

    def _check_mul(self, a: Any, b: Any) -> None:
        if isinstance(a, int) and isinstance(b, _SEQUENCES):
            a, b = b, a
        if isinstance(a, _SEQUENCES) and isinstance(b, int):
            self._check_len(len(a) * max(b, 0), a)
        elif isinstance(a, int) and isinstance(b, int):
            bits = a.bit_length() + b.bit_length()
            if bits > self.limits.max_int_bits:
                raise ScriptLimitError(
                    f"the product would have about {bits} bits; the limit is "
                    f"{self.limits.max_int_bits}"
                )

    def mul(self, a: Any, b: Any) -> Any:
        self._check_mul(a, b)
        return charge_result(a * b)

    def imul(self, a: Any, b: Any) -> Any:
        self._check_mul(a, b)
        return charge_result(operator.imul(a, b))

    def pow(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
            bits = int(b * math.log2(abs(a))) + 1
            if bits > self.limits.max_int_bits:
                raise ScriptLimitError(
                    f"{a} ** {b} would have about {bits} bits; the limit is "
                    f"{self.limits.max_int_bits}"
                )
        return charge_result(a**b)

    def lshift(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int):
            bits = a.bit_length() + max(b, 0)
            if bits > self.limits.max_int_bits:
                raise ScriptLimitError(
                    f"the shift would give about {bits} bits; the limit is "
                    f"{self.limits.max_int_bits}"
                )
        return charge_result(a << b)

    def mod(self, a: Any, b: Any) -> Any:
        if isinstance(a, (str, bytes)):
            raise ScriptLimitError("'%' formatting of text is not allowed; use an f-string")
        return a % b

    # -- attributes and methods --------------------------------------------------------------

    def attr(self, obj: Any, name: str) -> Any:
        kind = type(obj)
        allowed = ALLOWED_ATTRIBUTES.get(kind)
        if allowed is None or name not in allowed:
            raise ScriptLimitError(f"'{name}' is not available on a {kind.__name__} value")
        value = getattr(obj, name)
        if kind is MathFunctions or not callable(value):
            return value
        return partial(self._call_method, kind, name, obj)

    def _call_method(self, kind: type, name: str, obj: Any, *args: Any, **kwargs: Any) -> Any:
        precheck = self._prechecks.get((kind, name))
        if precheck is not None:
            precheck(obj, *args, **kwargs)
        if kind in _CONTAINERS:
            # These compare or hash their arguments (count, index, get, in-place sort…).
            for arg in args:
                self.deep(arg)
            if name in ("sort", "index", "count", "remove"):
                self.deep(obj)
            if (name, kind) in self._growing:
                args = self._grown(obj, args, kwargs)
        return charge_result(getattr(obj, name)(*args, **kwargs))

    def _grown(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        extra = len(kwargs)
        materialised = []
        for arg in args:
            items = arg if isinstance(arg, (dict, set, frozenset)) else list(arg)
            self.deep(items)
            extra += len(items)
            materialised.append(items)
        self._check_len(len(obj) + extra, obj)
        charge(extra)
        return tuple(materialised)

    def _check_replace(self, s: str, old: Any, new: Any, count: int = -1) -> None:
        if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
            hits = s.count(old) if old else len(s) + 1
            if isinstance(count, int) and count >= 0:
                hits = min(hits, count)
            self._check_len(len(s) + hits * (len(new) - len(old)), s)

    def _check_join(self, sep: str, items: Any) -> None:
        if not isinstance(items, (list, tuple)):
            raise ScriptLimitError("join() needs a list, e.g. ', '.join(list(...))")
        total = sum(len(p) for p in items if isinstance(p, str))
        self._check_len(total + len(sep) * max(len(items) - 1, 0), sep)

    def _check_pad(self, s: str, width: Any, *args: Any) -> None:
        if isinstance(width, int):
            self._check_len(width, s)

    def _check_strftime(self, value: date, fmt: Any) -> None:
        if isinstance(fmt, str) and len(fmt) > self.limits.max_format_width:
            raise ScriptLimitError("the date format is too long")

    # -- helpers that walk or build --------------------------------------------------------

    def safe_range(self, *args: int) -> range:
        try:
            result = range(*args)
            size = len(result)
        except OverflowError:
            size = self.limits.max_range + 1
        if size > self.limits.max_range:
            raise ScriptLimitError(
                f"range() with more than {self.limits.max_range} steps is not allowed"
            )
        return result

    def walking(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a builtin that walks its arguments deeply (compares, hashes, prints, copies)."""

        def call(*args: Any, **kwargs: Any) -> Any:
            for arg in args:
                self.deep(arg)
            return charge_result(func(*args, **kwargs))

        call.__name__ = getattr(func, "__name__", "helper")
        return call

    def safe_sum(self, values: Any, start: Any = 0) -> Any:
        if not isinstance(start, (int, float)):
            raise ScriptLimitError("sum() adds numbers only")
        total = start
        for value in values:
            if not isinstance(value, (int, float)):
                raise ScriptLimitError("sum() adds numbers only")
            total = total + value
        return total

    def format_value(self, value: Any) -> Any:
        """Used for f-string fields: the value is printed, so it must be small enough."""
        if type(value) is str:
            charge(len(value))
            return value
        return self.deep(value)

    def sliced(self, value: Any) -> Any:
        """Used around `x[a:b]`: a slice is a copy."""
        return charge_result(value)
