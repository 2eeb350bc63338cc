"""Fixtures for the workflows tests (prefixed wf_ so they never shadow the app's fixtures)."""

from __future__ import annotations

import pytest

from tests.workflows.bpmn_helpers import T0, fixture_bytes
from workflows import CompiledVersion, FixedClock, Runtime


@pytest.fixture
def wf_clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def wf_runtime(wf_clock: FixedClock) -> Runtime:
    return Runtime(clock=wf_clock)


@pytest.fixture
def alert_version(wf_runtime: Runtime) -> CompiledVersion:
    return wf_runtime.compile({"alert_handling.bpmn": fixture_bytes("alert_handling.bpmn")})
