"""Who is calling and what they sent: source-system API keys, user sessions with a CSRF
header on every change, and JSON bodies read within a size limit."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, current_app, g, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf, validate_csrf
from marshmallow import Schema
from wtforms.validators import ValidationError as TokenInvalid

from app import sessions
from app.api.schemas import CsrfSchema, LoginSchema, SessionSchema
from app.current import me, now
from app.extensions import db
from app.i18n import _l
from app.inputs import json_object, load_schema
from app.models import ApiKey, User
from app.services import accounts, api_keys
from app.services.accounts import SecurityPolicy
from app.services.errors import DomainError, Forbidden

bp = Blueprint("session", __name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADERS = ("X-CSRFToken", "X-CSRF-Token")
SMALL_BODY_BYTES = 64 * 1024

View = TypeVar("View", bound=Callable[..., Any])


# ---------------------------------------------------------------- request bodies

def json_body(*, limit: int) -> dict[str, Any]:
    """The request's JSON object; 400 when it is not one (see `app.inputs`), 413 when over
    `limit` bytes."""
    request.max_content_length = limit
    return json_object()


def load(schema: Schema, data: Any) -> Any:
    """Validate with a schema; 422 with the messages per field."""
    return load_schema(schema, data)


def query_args(schema: Schema) -> dict[str, Any]:
    return cast(dict[str, Any], load(schema, request.args.to_dict()))


# ---------------------------------------------------------------- source systems

def api_key() -> ApiKey:
    """The calling source system, from `Authorization: Bearer pk_…` or `X-API-Key: pk_…`;
    checked once per request (the rate limit counts per key)."""
    key = g.get("api_key")
    if key is None:
        header = request.headers.get("Authorization") or request.headers.get("X-API-Key")
        key = g.api_key = api_keys.authenticate(header, now=now())
    return cast(ApiKey, key)


# ---------------------------------------------------------------- people

def _check_csrf() -> None:
    token = next((request.headers[h] for h in CSRF_HEADERS if request.headers.get(h)), None)
    try:
        validate_csrf(token)
    except TokenInvalid:
        raise DomainError(_l("The X-CSRFToken header is missing or no longer valid: take a "
                             "fresh token from GET /api/v1/csrf; nothing was saved."),
                          code="csrf", status=400) from None


def _require_session(*, allow_password_change: bool = False) -> User:
    if not current_user.is_authenticated:
        raise DomainError(_l("Log in first (POST /api/v1/session)."), code="login_required",
                          status=401)
    if request.method in UNSAFE_METHODS:
        _check_csrf()
    user = me()
    if user.must_change_password and not allow_password_change:
        raise Forbidden(_l("Your password must be changed before you continue; change it on "
                           "the web page first."), code="password_change_required")
    return user


def signed_in(view: View) -> View:
    """A logged-in person; unsafe methods also need the session's CSRF token as a header."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _require_session()
        return view(*args, **kwargs)

    return cast(View, wrapper)


@bp.get("/csrf")
def csrf_token() -> tuple[Any, int]:
    """A CSRF token bound to this session, for the X-CSRFToken header."""
    return jsonify(CsrfSchema().dump({"csrf_token": generate_csrf()})), 200


@bp.get("/session")
def who_am_i() -> tuple[Any, int]:
    user = _require_session(allow_password_change=True)
    return jsonify(SessionSchema().dump({"user": user, "csrf_token": generate_csrf()})), 200


@bp.post("/session")
def log_in() -> tuple[Any, int]:
    _check_csrf()
    given = load(LoginSchema(), json_body(limit=SMALL_BODY_BYTES))
    current = now()
    try:
        user = accounts.authenticate(given["username"], given["password"], now=current,
                                     policy=SecurityPolicy.from_config(current_app.config),
                                     remote_addr=request.remote_addr)
    except accounts.LoginRefused:
        db.session.commit()  # failed attempts and lock-outs are kept
        raise
    db.session.commit()
    sessions.start(user, now=current)
    g.pop("csrf_token", None)  # the old token died with the old session
    body = SessionSchema().dump({"user": user, "csrf_token": generate_csrf()})
    return jsonify(body), 200


@bp.delete("/session")
def log_out() -> tuple[str, int]:
    user = _require_session(allow_password_change=True)
    accounts.log_out(user, now=now(), remote_addr=request.remote_addr)
    db.session.commit()
    sessions.end()
    return "", 204

