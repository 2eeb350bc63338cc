"""What running designer-written text in worker processes costs (see workflows/sandbox.py).

Run from the repository root: python benchmarks/sandbox.py

Prints the start cost of the fork server and of one more worker, the round trip of one
evaluation sent to a warm worker (small and 4 KB task data) next to the same evaluation in
process, and what the other granularity, a whole engine step in a worker, would add: shipping
the instance state there and back and loading and saving it once more.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_overhead import START, Wrapped, alert_bpmn  # noqa: E402

from workflows import ScriptLimits, sandbox  # noqa: E402
from workflows.scripting import LocalEvaluator, RestrictedEnvironment  # noqa: E402

SCRIPT = "level = 'red' if value >= threshold else 'yellow'\nchecked_at = now().isoformat()"
SMALL = {"value": 5, "threshold": 3}
LARGER = {**SMALL, "note": "现场确认" * 40, "departments": [
    {"name": "燃气公司", "town": "川沙", "people": n, "notified": False} for n in range(40)]}


def median_us(action: Callable[[], Any], repetitions: int = 400) -> float:
    for _ in range(20):
        action()
    times = []
    for _ in range(repetitions):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e6


def main() -> None:
    began = time.perf_counter()
    pool = sandbox.pool(512, 2)
    pool.call({"op": "ping"}, timeout=30)
    print(f"fork server and first worker ready      {(time.perf_counter() - began) * 1e3:8.1f} ms")
    began = time.perf_counter()
    second = sandbox.WorkerPool(512, 1)
    second.call({"op": "ping"}, timeout=30)
    print(f"one more worker (forked from the server) {(time.perf_counter() - began) * 1e3:8.1f} ms")
    second.close()

    isolated = RestrictedEnvironment(ScriptLimits())
    local = LocalEvaluator(ScriptLimits())
    for label, data in (("small", SMALL), ("4 KB", LARGER)):
        size = len(sandbox.encode(data))
        in_worker = median_us(lambda d=data: isolated.execute(SCRIPT, dict(d)))  # type: ignore[misc]
        in_process = median_us(lambda d=data: local.execute(SCRIPT, dict(d)))  # type: ignore[misc]
        print(f"script, {label:5} task data ({size:5d} B): worker {in_worker:7.1f} us   "
              f"in process {in_process:6.1f} us")
    plain = median_us(lambda: isolated.evaluate("value >= threshold", SMALL))
    print(f"plain condition (stays in process)        {plain:7.1f} us")

    wrapped = Wrapped(alert_bpmn(lambda v: v), "alert")
    instance, _ = wrapped.runtime.start(wrapped.version, "alert", SMALL, at=START)
    state = instance.dump()
    save_load = median_us(lambda: wrapped.runtime.load(wrapped.version, state).dump(), 200)
    echo = median_us(lambda: pool.call({"op": "ping", "state": state.decode()}, timeout=30), 200)
    print(f"a whole step in a worker would add: state {len(state)} B there and back "
          f"{echo:7.1f} us + load and save once more {save_load:7.1f} us")


if __name__ == "__main__":
    main()
