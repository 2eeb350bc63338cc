"""Checking, compiling and running handbook text from several threads at once."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from workflows import Runtime, ScriptLimits
from workflows.safety import check_source, compile_checked
from workflows.timers import check_timer_text


@pytest.fixture
def switching_gc() -> Iterator[None]:
    """A garbage collection lets other threads run, as finalizers do in a busy server."""

    def yield_gil(phase: str, info: dict[str, int]) -> None:
        time.sleep(0.0001)

    gc.callbacks.append(yield_gil)
    threshold = gc.get_threshold()
    gc.set_threshold(50, 5, 5)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(yield_gil)


def _script(n: int) -> str:
    return "\n".join(f"x{i} = [a + {n} * b for a in range(3) for b in range(2) if a > b or "
                     f"(a and b)]" for i in range(60))


def _in_threads(work: Callable[[int], None], count: int = 4) -> list[BaseException]:
    """Run work(0..count-1) in threads at once; the errors they raised."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_parsing_and_compiling_from_several_threads(switching_gc: None) -> None:
    limits = ScriptLimits()

    def work(n: int) -> None:
        for k in range(6):
            source = _script(n * 100 + k)
            assert check_source(source, "exec", limits) == []
            compile_checked(source, "exec", limits)
            check_timer_text("timeDuration", f"'PT{k + 1}M'", limits)

    assert _in_threads(work) == []


def test_scripts_run_from_several_threads(switching_gc: None) -> None:
    runtime = Runtime()

    def work(n: int) -> None:
        for k in range(4):
            context = {"n": n, "k": k}
            runtime.engine.environment.execute(_script(n * 1000 + k), context)
            assert context["x0"]

    assert _in_threads(work) == []
