"""The worker side of `sandbox`: a loop that evaluates scripts and checks versions on request.

Runs in a process forked from the fork server, under RLIMIT_AS (set once) and RLIMIT_CPU
(re-armed before every request). Requests and answers are JSON frames (see `sandbox.encode`);
a version's files follow their request as raw frames.
"""

from __future__ import annotations

import gc
import math
import resource
import traceback
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from .errors import DataError, DefinitionError
from .guards import ScriptLimitError, ScriptLimits
from .hooks import engine_call
from .safety import SCRIPT_FILENAME, UnsafeScriptError
from .sandbox import decode, encode
from .scripting import LocalEvaluator, ScriptTimeout, encode_data, encode_result
from .specs import CompileOptions, compile_version, options_from_dict


def _limit_self(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _arm_cpu(seconds: float) -> None:
    """Let the kernel end this process once it used `seconds` more CPU time (SIGXCPU)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _script_line(exc: BaseException) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == SCRIPT_FILENAME:
            line = lineno
    return line


def _error(exc: BaseException) -> bytes:
    kind = ("timeout" if isinstance(exc, ScriptTimeout)
            else "limit" if isinstance(exc, ScriptLimitError)
            else "unsafe" if isinstance(exc, UnsafeScriptError)
            else "data" if isinstance(exc, DataError)
            else "error")
    return encode({"ok": False, "error": {
        "kind": kind, "type": exc.__class__.__name__, "message": str(exc),
        "line": _script_line(exc)}})


def _peak_address_space() -> int | None:
    """The highest address-space size this process reached (VmPeak), where Linux tells."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


class _Server:
    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self.setups: dict[str, Any] = {}
        self.evaluators: dict[str, LocalEvaluator] = {}

    def ran_out_of_memory(self) -> bool:
        """Out of address space, C code does not always raise MemoryError (the XML library
        and the interpreter's internals may fail with other errors): a failure this close to
        the limit counts as running out of memory."""
        peak = _peak_address_space()
        return peak is not None and peak > 0.9 * self.memory_bytes

    def evaluator(self, key: str) -> LocalEvaluator:
        found = self.evaluators.get(key)
        if found is None:
            limits = ScriptLimits(**self.setups[key])
            found = self.evaluators[key] = LocalEvaluator(limits)
        return found

    def run(self, request: dict[str, Any]) -> bytes:
        evaluator = self.evaluator(request["limits"])
        context = request["context"]
        with engine_call(datetime.fromisoformat(request["now"])):
            if request["op"] == "eval":
                value = evaluator.evaluate(request["source"], context, request.get("external"))
                return b'{"ok":true,"value":' + encode_result(value, evaluator.limits) + b"}"
            evaluator.execute(request["source"], context, request.get("external"))
            body = encode_data(context, evaluator.limits, "task data")
            return b'{"ok":true,"data":' + body + b"}"

    def compile(self, request: dict[str, Any], frames: list[bytes]) -> bytes:
        options: CompileOptions = options_from_dict(request["options"], isolate=False)
        try:
            compile_version(list(zip(request["names"], frames, strict=True)), options)
        except DefinitionError as exc:
            if self.ran_out_of_memory():
                raise MemoryError from None
            return encode({"ok": False, "problems": [p.to_dict() for p in exc.problems]})
        return encode({"ok": True})

    def handle(self, request: dict[str, Any], frames: list[bytes]) -> bytes:
        handlers: dict[str, Callable[[], bytes]] = {
            "eval": lambda: self.run(request),
            "exec": lambda: self.run(request),
            "compile": lambda: self.compile(request, frames),
            "ping": lambda: encode({"ok": True}),
        }
        try:
            return handlers[request["op"]]()
        except MemoryError:
            raise
        except Exception as exc:
            if self.ran_out_of_memory():
                raise MemoryError from None
            return _error(exc)


_RESTART = encode({"ok": False, "restart": True, "error": {"kind": "memory"}})


def serve(conn: Connection, memory_bytes: int) -> None:
    """Answer requests on `conn` until it closes (the process entry point)."""
    _limit_self(memory_bytes)
    gc.freeze()  # what the fork server imported stays shared with it
    server = _Server(memory_bytes)
    while True:
        try:
            request = decode(conn.recv_bytes())
            if request.get("op") == "setup":
                # What later requests name by key (limits); no answer.
                server.setups[request["key"]] = request["value"]
                continue
            frames = [conn.recv_bytes() for _ in range(int(request.get("frames", 0)))]
        except (EOFError, OSError):
            return
        except MemoryError:
            request, frames = None, []
        if request is None:
            answer = _RESTART
        else:
            _arm_cpu(float(request.get("seconds", 60)))
            try:
                answer = server.handle(request, frames)
            except MemoryError:
                answer = _RESTART
        del request, frames
        worn = answer is _RESTART or server.ran_out_of_memory()
        if worn and answer is not _RESTART:
            # Near the limit once, a later failure would look like lack of memory: retire.
            answer = b'{"restart":true,' + answer[1:]
        try:
            conn.send_bytes(answer)
        except MemoryError:
            conn.send_bytes(_RESTART)
        except OSError:
            return
        if worn:
            return
