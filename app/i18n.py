"""Translatable text outside templates: messages are marked here and rendered per locale."""

from __future__ import annotations

from flask_babel import lazy_gettext

_l = lazy_gettext

__all__ = ["_l"]
