"""HTTP security headers on every answer (pages, JSON, static files), set by Flask-Talisman."""

from __future__ import annotations

from flask import Flask
from flask_talisman import Talisman

# No inline script anywhere: pages load their JS as modules from static/dist. Styles may be
# inline because bpmn-js writes style attributes and <style> elements while it draws.
CONTENT_SECURITY_POLICY: dict[str, str | list[str]] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600


def install_security_headers(app: Flask) -> Talisman:
    """Bind one Talisman per application (it keeps its options on the instance).

    HTTPS is not forced: the embedded default serves plain http://127.0.0.1 and production
    terminates TLS in front of the WSGI server. HSTS is sent only when the session cookie is
    marked Secure, i.e. when the site is served over HTTPS.
    """
    secure = bool(app.config["SESSION_COOKIE_SECURE"])
    talisman = Talisman(
        app,
        force_https=False,
        strict_transport_security=secure,
        strict_transport_security_max_age=HSTS_MAX_AGE_SECONDS,
        strict_transport_security_include_subdomains=False,
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="same-origin",
        session_cookie_secure=secure,
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
        x_content_type_options=True,
    )
    app.extensions["talisman"] = talisman
    return talisman
