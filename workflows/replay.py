"""Replay: re-execute recorded inputs against the exact stored version and check the outcome.

Each runtime call returns its input (`StepResult.input`) with the time it ran at. Replaying feeds
the same inputs, in order, at the same times: task ids come from the instance id and a counter and
the engine's clock is the recorded time, so the replayed instance's saved state equals the
recorded one byte for byte when nothing was tampered with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ReplayMismatchError, StateError
from .inputs import (
    CompleteTaskInput,
    DataInput,
    MessageInput,
    MigrationInput,
    RecordedInput,
    RetryInput,
    SignalInput,
    StartInput,
    TimerInput,
)
from .migration import migrate
from .runtime import Instance, Runtime
from .specs import CompiledVersion


def replay(
    runtime: Runtime,
    version: CompiledVersion,
    inputs: Iterable[RecordedInput],
    versions: Mapping[str, CompiledVersion] | None = None,
) -> Instance:
    """Re-run `inputs` (the first must be a StartInput) and return the resulting instance.

    `versions` maps content hashes to compiled versions for recorded migrations.
    """
    instance: Instance | None = None
    for item in inputs:
        if isinstance(item, StartInput):
            if instance is not None:
                raise StateError("a replay has exactly one start input, at the beginning")
            instance, _ = runtime.start(version, item.process_id, item.data,
                                        instance_id=item.instance_id, actor=item.actor,
                                        at=item.at)
            continue
        if instance is None:
            raise StateError("a replay must begin with the start input")
        if isinstance(item, CompleteTaskInput):
            instance.complete_task(item.task_id, item.data, actor=item.actor, at=item.at)
        elif isinstance(item, MessageInput):
            instance.send_message(item.name, item.payload, actor=item.actor, at=item.at)
        elif isinstance(item, SignalInput):
            instance.send_signal(item.name, item.payload, actor=item.actor, at=item.at)
        elif isinstance(item, TimerInput):
            instance.fire_timers(at=item.at)
        elif isinstance(item, DataInput):
            instance.update_data(item.values, actor=item.actor, at=item.at)
        elif isinstance(item, RetryInput):
            instance.retry_task(item.task_id, actor=item.actor, at=item.at)
        elif isinstance(item, MigrationInput):
            target = (versions or {}).get(item.target_version)
            if target is None:
                raise StateError(f"version {item.target_version[:12]} is needed to replay a "
                                 "migration")
            migrate(instance, target, at=item.at)
    if instance is None:
        raise StateError("nothing to replay")
    return instance


def _first_difference(expected: Any, actual: Any, path: str = "state") -> str | None:
    if type(expected) is not type(actual):
        return f"{path}: expected {type(expected).__name__}, got {type(actual).__name__}"
    if isinstance(expected, dict):
        for key in sorted(set(expected) | set(actual), key=str):
            if key not in actual:
                return f"{path}.{key}: missing after replay"
            if key not in expected:
                return f"{path}.{key}: not in the recorded state"
            found = _first_difference(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if path.endswith(".delta.deletions"):
            # The engine lists deleted keys from a set difference: the order carries nothing.
            expected, actual = sorted(expected, key=str), sorted(actual, key=str)
        if len(expected) != len(actual):
            return f"{path}: expected {len(expected)} items, got {len(actual)}"
        for index, (a, b) in enumerate(zip(expected, actual, strict=True)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if expected == actual else f"{path}: expected {expected!r}, got {actual!r}"


def verify_replay(
    runtime: Runtime,
    version: CompiledVersion,
    inputs: Iterable[RecordedInput],
    recorded_state: Mapping[str, Any] | bytes,
    versions: Mapping[str, CompiledVersion] | None = None,
) -> Instance:
    """Replay and compare with `recorded_state`; raise ReplayMismatchError at the first
    difference."""
    expected = json.loads(recorded_state) if isinstance(recorded_state, bytes) else \
        json.loads(json.dumps(recorded_state))
    instance = replay(runtime, version, inputs, versions)
    actual = json.loads(instance.dump_text())
    difference = _first_difference(expected, actual)
    if difference:
        raise ReplayMismatchError(f"the replay differs from the recorded state: {difference}")
    return instance
