"""Which language and time zone a page is rendered in."""

from __future__ import annotations

from flask import current_app, request, session
from flask_login import current_user

from app.config import SUPPORTED_LOCALES


def select_locale() -> str:
    chosen = session.get("locale") if request else None
    if chosen in SUPPORTED_LOCALES:
        return str(chosen)
    if getattr(current_user, "is_authenticated", False) and current_user.locale:
        return str(current_user.locale)
    return str(current_app.config["DEFAULT_LOCALE"])


def select_timezone() -> str:
    return str(current_app.config["TIMEZONE"])
