"""Supervised worker processes for designer-written text: evaluations and version checks.

The AST allow-list (`safety`) and the trace budget (`scripting`) are the first line, but a time
budget checked between lines cannot stop one long C-level call: building a set of 50 000
integers whose hashes all collide ran 85 s as a script, a condition or a timer with a 1 s
budget, and held the GIL (one alert stalled a whole server for 57 s). So scripts and
expressions run in a worker process the interpreter cannot argue with:

- RLIMIT_AS caps its address space (`ScriptLimits.max_memory_mb`; a failed allocation is a
  MemoryError there, reported and the worker replaced);
- RLIMIT_CPU is re-armed before every request to the CPU time used so far plus the budget plus
  the grace, so the kernel ends a worker that somehow outlives the parent's watch;
- the parent waits for the answer with a timeout (budget + `kill_grace_seconds`), then kills
  the worker (SIGKILL) and starts another one on next use. The calling thread waits in
  `poll()` without the GIL, so other threads and cases carry on.

Workers are forked from multiprocessing's forkserver, a fresh interpreter that has imported
only `workflows` (never the app, nor the caller's main module, which multiprocessing would
otherwise run again in each worker): they inherit no database connections, sockets or threads
of the server. A pool per memory limit hands workers out (check-out per request, at most
`max_workers` at once; more callers wait), starts them lazily, and closes them at exit; a
process forked from one that had pools (a gunicorn worker) starts its own.

Granularity, measured on the 2-core development machine (Python 3.11; `python
benchmarks/sandbox.py`; first figure with the machine idle, second while other test suites ran
on it; an idle virtual CPU wakes up slowly, so round trips cost more when it is quiet):

- fork server start (once per process; imports SpiffWorkflow and lxml) with the first worker:
  0.15 s / 0.55 s; each further worker: 4-6 ms / 13-22 ms (a spawned interpreter: 100-200 ms
  per worker before any import);
- a script sent to a warm worker: 0.2 ms / 0.11 ms with small task data, 0.48 ms / 0.29 ms
  with 3 KB, against 10-17 us and 50-60 us in process; a bare round trip is 0.1 ms;
- a whole engine step in a worker would instead ship the state there and back (5 KB:
  0.13-0.26 ms) and load and save it once more (0.31-0.34 ms), 0.45-0.6 ms for every step, and
  every worker would compile and cache every version it meets (60-100 ms each for a real
  handbook);
- the real handbooks need few round trips: through the case lifecycle tests, 67 engine calls
  sent 59 scripts and expressions to a worker and kept 118 plain ones in process.

So each evaluation is sent to a pooled, persistent worker (code is compiled and cached there
per limits and text; context and results travel as JSON, which task data is anyway; the
engine call's time goes along for now()/today()). Expressions that are a constant, a name, or
comparisons and boolean logic of those, and scripts that only assign such comparisons or
constants to names (see `safety.is_plain`), stay in the calling process: their cost is linear
in task data that is already bounded, and they are most of what a handbook evaluates (gateway
conditions, ISO timer literals, classifications). Checking and compiling a version
also runs in a worker (`specs.compile_version`), with `CompileOptions.max_seconds` and
`max_memory_mb`.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import multiprocessing.forkserver as mp_forkserver
import multiprocessing.process as mp_process
import multiprocessing.spawn as mp_spawn
import os
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any

WORKER_MODULE = "workflows.worker"


class WorkerFailure(Exception):
    """A worker gave no answer: it was stopped by time, by the kernel, or it died."""

    def __init__(self, reason: str, exitcode: int | None = None):
        self.reason = reason  # "timeout", "cpu" or "died"
        self.exitcode = exitcode
        super().__init__(f"worker {reason} (exit code {exitcode})")


class _WorkerGone(Exception):
    """The worker was dead before the request reached it (safe to retry on another one)."""


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(message: Any) -> bytes:
    """A protocol frame: compact JSON; lone surrogates in task data survive the trip."""
    return _ENCODER.encode(message).encode("utf-8", "surrogatepass")


def decode(frame: bytes) -> Any:
    return json.loads(frame.decode("utf-8", "surrogatepass"))


def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    # Only the engine layer in the fork server: never the caller's __main__ (the app).
    context.set_forkserver_preload([WORKER_MODULE])
    _install_preparation()
    return context


_STARTING = threading.local()
_original_preparation: Callable[[str], dict[str, Any]] | None = None


def _preparation_data(name: str) -> dict[str, Any]:
    assert _original_preparation is not None
    data = _original_preparation(name)
    if getattr(_STARTING, "worker", False):
        # multiprocessing would run the caller's main module again in the child (as
        # __mp_main__): a server script, a CLI, a test runner. A worker needs none of it.
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


_PREPARATION_LOCK = threading.Lock()


def _install_preparation() -> None:
    global _original_preparation
    with _PREPARATION_LOCK:
        if _original_preparation is None:
            _original_preparation = mp_spawn.get_preparation_data
            mp_spawn.get_preparation_data = _preparation_data


class _Worker:
    """One worker process and the parent's end of its pipe."""

    __slots__ = ("process", "conn", "known")

    def __init__(self, process: BaseProcess, conn: Connection):
        self.process = process
        self.conn = conn
        self.known: set[str] = set()

    @classmethod
    def start(cls, memory_bytes: int) -> _Worker:
        from . import worker

        context = _context()
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(target=worker.serve, args=(child_end, memory_bytes),
                                  name="workflows-sandbox", daemon=True)
        _STARTING.worker = True
        try:
            process.start()
        finally:
            _STARTING.worker = False
            child_end.close()
        _PROCESSES.add(process)
        return cls(process, parent_end)

    def call(self, request: bytes, frames: Sequence[bytes], timeout: float,
             setup: tuple[str, Any] | None, max_reply: int) -> Any:
        try:
            if setup is not None and setup[0] not in self.known:
                self.conn.send_bytes(encode({"op": "setup", "key": setup[0], "value": setup[1]}))
            self.conn.send_bytes(request)
            for frame in frames:
                self.conn.send_bytes(frame)
        except OSError:
            self.stop()
            raise _WorkerGone from None
        if not self.conn.poll(timeout):
            self.kill()
            raise WorkerFailure("timeout")
        try:
            reply = self.conn.recv_bytes(max_reply)
        except (EOFError, OSError):
            # Dead (the CPU limit, the kernel's OOM killer) or an oversized answer.
            code = self.kill()
            raise WorkerFailure("cpu" if code == -signal.SIGXCPU else "died", code) from None
        if setup is not None:
            self.known.add(setup[0])
        return decode(reply)

    def kill(self) -> int | None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()
        _PROCESSES.discard(self.process)
        return self.process.exitcode

    def stop(self) -> None:
        """End the worker politely: it leaves its loop when the pipe closes."""
        self.conn.close()
        self.process.join(1)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        _PROCESSES.discard(self.process)


class WorkerPool:
    """Workers with one address-space limit, checked out for one request at a time."""

    def __init__(self, memory_mb: int, size: int):
        self.memory_bytes = memory_mb * 1024 * 1024
        self.size = max(1, size)
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._running = 0
        self._closed = False

    def _check_out(self) -> _Worker:
        with self._cond:
            while not self._idle and self._running >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._running += 1
        try:
            return _Worker.start(self.memory_bytes)
        except BaseException:
            self._discarded()
            raise

    def _discarded(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify()

    def _check_in(self, worker: _Worker) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
        worker.stop()
        self._discarded()

    def call(self, header: dict[str, Any], frames: Sequence[bytes] = (), *, timeout: float,
             setup: tuple[str, Any] | None = None, max_reply: int = 64 * 1024 * 1024) -> Any:
        """Send one request and return the decoded answer; WorkerFailure if none came.

        `setup` (key, payload) is sent along only to workers that have not seen the key yet
        (the limits an evaluation runs with, for instance).
        """
        # Encoded before a worker is taken: data that is not JSON fails here, harmlessly.
        request = encode({**header, "frames": len(frames)})
        for attempt in range(2):
            worker = self._check_out()
            try:
                reply = worker.call(request, frames, timeout, setup, max_reply)
            except _WorkerGone:
                self._discarded()
                if attempt:
                    raise WorkerFailure("died") from None
                continue
            except BaseException:
                if worker.conn.closed:
                    self._discarded()
                else:
                    # Interrupted between send and answer: its state is unknown.
                    worker.kill()
                    self._discarded()
                raise
            if isinstance(reply, dict) and reply.get("restart"):
                worker.stop()
                self._discarded()
            else:
                self._check_in(worker)
            return reply
        raise AssertionError("unreachable")

    def _forget_inherited(self) -> None:
        """In a forked child: the workers (and any lock held at the fork) are the parent's."""
        self._cond = threading.Condition()
        self._idle = []
        self._running = 0

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()
            self._discarded()


_POOLS: dict[tuple[int, int], WorkerPool] = {}
_PROCESSES: set[BaseProcess] = set()  # every worker started by this process, not yet ended
_POOLS_LOCK = threading.Lock()
_OWNER = os.getpid()


def pool(memory_mb: int, size: int) -> WorkerPool:
    """The process-wide pool for this memory limit and size (created on first use)."""
    key = (memory_mb, size)
    with _POOLS_LOCK:
        found = _POOLS.get(key)
        if found is None:
            found = _POOLS[key] = WorkerPool(memory_mb, size)
        return found


def shutdown() -> None:
    """Stop every idle worker of this process (busy ones stop when their caller returns)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values()) if _OWNER == os.getpid() else []
        _POOLS.clear()
    for found in pools:
        found.close()


def _after_fork_in_child() -> None:
    """A forked child (a gunicorn worker from a master that used the sandbox) must not use
    its parent's workers, nor its fork server, which is not its child: it starts its own."""
    global _POOLS_LOCK, _PREPARATION_LOCK, _OWNER
    _POOLS_LOCK = threading.Lock()
    _PREPARATION_LOCK = threading.Lock()
    for inherited in _POOLS.values():  # runtimes keep them: reset, do not replace
        inherited._forget_inherited()
    for process in _PROCESSES:
        # multiprocessing would try to join them at exit ("can only join a child process").
        mp_process._children.discard(process)  # type: ignore[attr-defined]
    _PROCESSES.clear()
    _OWNER = os.getpid()
    server: Any = mp_forkserver._forkserver  # its state belongs to the parent
    if server._forkserver_pid is not None:
        server._lock = threading.Lock()
        if server._forkserver_alive_fd is not None:
            os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
        server._forkserver_address = None
        server._forkserver_pid = None


atexit.register(shutdown)
os.register_at_fork(after_in_child=_after_fork_in_child)
