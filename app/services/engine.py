"""The application's one workflows Runtime, and compiled handbook versions by content hash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import current_app

from app.models import HandbookVersion
from workflows import CompiledVersion, Runtime


class _AppClock:
    """Adapts the application's clock (a callable) to the workflows Clock protocol."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now()


def runtime() -> Runtime:
    """The runtime of the current application: one spec cache shared by every request."""
    existing = current_app.extensions.get("workflows_runtime")
    if existing is None:
        existing = Runtime(clock=_AppClock(current_app.extensions["clock"]))
        current_app.extensions["workflows_runtime"] = existing
    return existing  # type: ignore[no-any-return]


def bpmn_files(version: HandbookVersion) -> dict[str, bytes]:
    return {name: text.encode("utf-8") for name, text in version.files.items()
            if name.endswith(".bpmn")}


_COMPILED: dict[str, CompiledVersion] = {}


def compiled(version: HandbookVersion) -> CompiledVersion:
    """The compiled specs of a stored version, by its content hash: stored versions never
    change, so the (large, deferred) files are read and compiled once per process."""
    found = _COMPILED.get(version.content_hash)
    if found is None:
        found = runtime().compile(bpmn_files(version))
        _COMPILED[version.content_hash] = found
    return found


def forget_compiled() -> None:
    """Drop every compiled version and the runtime, as a restarted process would have them."""
    _COMPILED.clear()
    current_app.extensions.pop("workflows_runtime", None)
