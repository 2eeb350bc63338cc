"""Small helpers shared by the web views."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from flask import current_app, request
from flask_login import current_user

from app.inputs import page_number
from app.models import User
from app.services.accounts import SecurityPolicy


def now() -> datetime:
    return cast(datetime, current_app.extensions["clock"]())


def me() -> User:
    return cast(User, current_user._get_current_object())  # type: ignore[attr-defined]


def policy() -> SecurityPolicy:
    return SecurityPolicy.from_config(current_app.config)


def remote_addr() -> str | None:
    return request.remote_addr


def int_arg(name: str, default: int = 1) -> int:
    """A page or step number from the query string (1 to MAX_PAGE)."""
    return page_number(request.args.get(name), default)


def form_dict() -> dict[str, Any]:
    return {k: v for k, v in request.form.items() if k != "csrf_token"}


def local_target(target: str | None, default: str) -> str:
    """`target` when it is a path on this site, else `default` (no open redirect).

    Browsers read a backslash as a slash and drop tabs and newlines, so "/\\evil" and "/\t/evil"
    lead off-site: anything with either, or with a scheme or host, is refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
