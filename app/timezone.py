"""The platform's time zone (the TIMEZONE setting), for code that turns moments into local
dates and times and back."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT = "Asia/Shanghai"


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_zone() -> ZoneInfo:
    """The time zone of the running application (the platform's default outside one)."""
    if not has_app_context():
        return _zone(DEFAULT)
    return _zone(str(current_app.config["TIMEZONE"]))
