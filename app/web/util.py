"""Small helpers shared by the web views."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, request

from app.current import me, now
from app.inputs import page_number
from app.services.accounts import SecurityPolicy


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


def safe_next(default: str, target: str | None = None) -> str:
    """Where to go after a form: its `next` field (or `target`) when on this site, else
    `default`."""
    wanted = target if target is not None else request.values.get("next")
    return local_target(wanted, default)


__all__ = ["form_dict", "int_arg", "local_target", "me", "now", "policy", "remote_addr",
           "safe_next"]
