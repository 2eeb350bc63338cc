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


def compiled(version: HandbookVersion) -> CompiledVersion:
    """The compiled specs of a stored version; compiled once per process and cached."""
    return runtime().compile(bpmn_files(version))
