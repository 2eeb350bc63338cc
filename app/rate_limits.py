"""Rate limits (Flask-Limiter): alert intake per API key, log-in per client address and per
user name. Counted in Redis when REDIS_URL is set, else in this process's memory.

One limiter per application, like the scheduler: Flask-Limiter keeps its storage and limits
on the instance, and tests run several applications side by side.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded

from app.models import ApiKey

LOGIN_ENDPOINTS = ("auth.login", "api.session.log_in")
INTAKE_ENDPOINTS = ("api.alerts.receive_alerts",)
# Larger log-in bodies are refused by the view (413); the limit does not read them.
_LOGIN_BODY_READ = 64 * 1024


def _setting(name: str) -> Callable[[], str]:
    return lambda: str(current_app.config[name])


def _client_address() -> str:
    return f"ip:{request.remote_addr or '-'}"


def _claimed_user_name() -> str:
    """The user name a log-in names, as the accounts service compares it (case aside)."""
    name = None
    if request.is_json:
        if 0 < (request.content_length or 0) <= _LOGIN_BODY_READ:
            body = request.get_json(silent=True)
            name = body.get("username") if isinstance(body, dict) else None
    else:
        name = request.form.get("username")
    return "user:" + (name.strip().lower()[:60] if isinstance(name, str) else "")


def _api_key() -> str:
    """The calling source system, authenticated before the view (see app.api.alerts); an
    empty key skips the limit, which only happens if no key was checked."""
    key = g.get("api_key")
    return f"api-key:{key.id}" if isinstance(key, ApiKey) else ""


def _refused(response: object) -> bool:
    return getattr(response, "status_code", 200) >= 400


def install_rate_limits(app: Flask) -> Limiter:
    """Bind a limiter and put the limits on the views; call after the blueprints."""
    redis_url = app.config["REDIS_URL"]
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "pudong-ops")
    limiter = Limiter(
        key_func=_client_address,
        storage_uri=redis_url or "memory://",
        strategy="fixed-window",
        headers_enabled=False,  # Retry-After goes on the 429 answer (app.web errors)
        # Redis down must not stop intake or log-in: count in memory meanwhile, and log it.
        in_memory_fallback_enabled=bool(redis_url),
        swallow_errors=True,
    )
    limiter.init_app(app)
    app.extensions["rate_limiter"] = limiter

    per_address = limiter.shared_limit(_setting("RATE_LIMIT_LOGIN_IP"), scope="login-ip",
                                       key_func=_client_address, methods=["POST"],
                                       deduct_when=_refused)
    per_user = limiter.shared_limit(_setting("RATE_LIMIT_LOGIN_USER"), scope="login-user",
                                    key_func=_claimed_user_name, methods=["POST"],
                                    deduct_when=_refused,
                                    exempt_when=lambda: _claimed_user_name() == "user:")
    views: dict[str, Any] = app.view_functions
    for endpoint in LOGIN_ENDPOINTS:
        views[endpoint] = per_address(per_user(views[endpoint]))
    per_key = limiter.limit(_setting("RATE_LIMIT_ALERTS"), key_func=_api_key)
    for endpoint in INTAKE_ENDPOINTS:
        views[endpoint] = per_key(views[endpoint])
    return limiter


def retry_after(exc: RateLimitExceeded) -> int:
    """Whole seconds until the breached limit's window resets (at least 1)."""
    limiter: Limiter = current_app.extensions["rate_limiter"]
    try:
        current = limiter.current_limit
        if current is not None and current.breached:
            return max(1, math.ceil(current.window.reset_time - time.time()))
    except Exception:  # noqa: BLE001 - storage trouble: fall back to the window length
        current_app.logger.warning("rate limit window unknown", exc_info=True)
    return max(1, int(exc.limit.limit.get_expiry()))
