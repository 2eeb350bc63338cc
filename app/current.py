"""Who is calling and what time it is: asked by every request handler, web page and API
alike (the clock is the application's own, so that tests can move it)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from flask import current_app
from flask_login import current_user

from app.models import User


def now() -> datetime:
    return cast(datetime, current_app.extensions["clock"]())


def me() -> User:
    return cast(User, current_user._get_current_object())  # type: ignore[attr-defined]
