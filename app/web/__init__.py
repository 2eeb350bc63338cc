"""Server-rendered pages: blueprints, log-in wiring, error pages and per-request checks."""

from __future__ import annotations

import posixpath
from typing import Any, cast

from flask import (
    Flask,
    abort,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_limiter import RateLimitExceeded
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers.response import Response

from app import rate_limits, sessions
from app.extensions import db, login_manager
from app.i18n import _l
from app.inputs import refuse_unstorable_text
from app.models import ATTACHMENT_EXTENSIONS, Role
from app.services import accounts
from app.services.errors import DomainError
from app.services.permissions import can
from app.web.labels import (
    AUDIT_ACTION_LABELS,
    AUDIT_FIELD_LABELS,
    AUDIT_OBJECT_LABELS,
    AUDIT_RESULT_LABELS,
    NODE_KIND_LABELS,
    ROLE_DUTIES,
    ROLE_LABELS,
)
from app.web.util import now

# Pages an account that must change its password may still open.
_PASSWORD_CHANGE_ALLOWED = {"auth.change_password", "auth.logout", "auth.set_language", "static"}


def _wants_json() -> bool:
    # A client that sent JSON (the designer's check) reads the error as JSON too.
    return request.path.startswith("/api/") or request.is_json or (
        request.accept_mimetypes.best == "application/json")


def _error(status: int, code: str, message: Any, details: dict[str, Any] | None = None
           ) -> tuple[Any, int]:
    if _wants_json():
        return jsonify({"code": code, "message": str(message), "details": details or {}}), status
    return render_template("error.html", status=status, code=code, message=message,
                           details=details or {}), status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> tuple[Any, int]:
        db.session.rollback()
        return _error(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[Any, int]:
        db.session.rollback()
        return _error(400, "csrf", _l("The form's security token is missing or has expired. "
                                      "Reload the page and submit again; nothing was saved."))

    @app.errorhandler(RateLimitExceeded)
    def too_many_requests(exc: RateLimitExceeded) -> Response:
        db.session.rollback()
        seconds = rate_limits.retry_after(exc)
        response = make_response(_error(
            429, "rate_limited",
            _l("Too many requests. Please wait %(s)d seconds and try again.", s=seconds),
            {"retry_after": seconds, "limit": str(exc.limit.limit)}))
        response.headers["Retry-After"] = str(seconds)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Any, int]:
        db.session.rollback()
        messages = {
            403: _l("You do not have permission for this, or it is outside your scope."),
            404: _l("This page does not exist."),
            405: _l("This action is not allowed here."),
            413: _l("The upload or request is too large."),
        }
        status = exc.code or 500
        return _error(status, f"http_{status}", messages.get(status, exc.description))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Any, int]:
        db.session.rollback()
        app.logger.exception("unhandled error")
        return _error(500, "internal", _l("Something went wrong on our side; nothing was saved. "
                                          "Please try again or tell the technical support."))


def _register_request_checks(app: Flask) -> None:
    app.before_request(refuse_unstorable_text)

    def _back_to_login(message: str) -> Response | None:
        if request.path.startswith("/api/"):
            return None  # the API answers 401 itself
        flash(message, "warning")
        if request.endpoint in ("static", "auth.login"):
            return None
        return redirect(url_for("auth.login", next=request.full_path))

    @app.before_request
    def session_still_valid_and_password_age() -> Response | None:
        if not current_user.is_authenticated:
            if sessions.names_an_account():
                sessions.end()
                return _back_to_login(_("Your session has ended. Please log in again."))
            return None
        current = now()
        old = sessions.too_old(current)
        if old or sessions.idle(current):
            accounts.record_logout(current_user, now=current,
                                   reason="session_expired" if old else "idle_timeout",
                                   remote_addr=request.remote_addr)
            db.session.commit()
            sessions.end()
            if old:
                return _back_to_login(_(
                    "You have been logged in for %(h)d hours. Please log in again.",
                    h=int(sessions.absolute_limit().total_seconds() // 3600)))
            return _back_to_login(_(
                "You were logged out after %(m)d minutes without activity.",
                m=int(sessions.idle_limit().total_seconds() // 60)))
        sessions.touch(current)
        if (current_user.must_change_password and request.endpoint
                and request.endpoint not in _PASSWORD_CHANGE_ALLOWED):
            if request.path.startswith("/api/"):
                return None
            return redirect(url_for("auth.change_password"))
        return None


# static/ also holds the JS sources, the npm manifest and node_modules (source maps included):
# only the folders the pages load from are published.
_PUBLISHED_STATIC = ("css/", "dist/", "img/")


def _publish_page_assets_only(app: Flask) -> None:
    send_static = app.view_functions["static"]

    def static(filename: str) -> Response:
        path = posixpath.normpath(filename)
        if not path.startswith(_PUBLISHED_STATIC) or path.endswith(".map"):
            abort(404)
        return cast(Response, send_static(filename=path))

    app.view_functions["static"] = static

    @app.get("/favicon.ico")
    def favicon() -> Response:
        # Browsers ask for it at the root whatever the page says.
        return cast(Response, send_static(filename="img/favicon.ico"))


def _scenario_label(code: str) -> str:
    from app.services.scenarios import scenario_names

    return scenario_names().get(code, code)


def register_web(app: Flask) -> None:
    from app.web.admin import bp as admin_bp
    from app.web.auth import bp as auth_bp
    from app.web.case_migration import bp as case_migration_bp
    from app.web.cases import bp as cases_bp
    from app.web.designer import bp as designer_bp
    from app.web.handbook_data import bp as handbook_data_bp
    from app.web.handbooks import bp as handbooks_bp
    from app.web.main import bp as main_bp
    from app.web.operations import bp as operations_bp
    from app.web.oversight import bp as oversight_bp
    from app.web.registry import bp as registry_bp
    from app.web.reports import bp as reports_bp
    from app.web.test_runs import bp as test_runs_bp

    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please log in to open this page.")
    login_manager.login_message_category = "info"
    # "basic": a phone that changes network keeps its session (marked not fresh).
    login_manager.session_protection = "basic"
    login_manager.user_loader(accounts.load_user)

    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(handbooks_bp)
    app.register_blueprint(operations_bp)
    app.register_blueprint(registry_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(designer_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(test_runs_bp)
    app.register_blueprint(case_migration_bp)
    app.register_blueprint(handbook_data_bp)
    app.register_blueprint(oversight_bp)
    _register_errors(app)
    _register_request_checks(app)
    _publish_page_assets_only(app)

    from app.services.stuck import summary as stuck_summary

    # Macros imported without context (the case timeline) name roles too.
    app.jinja_env.globals["ROLE_LABELS"] = ROLE_LABELS
    app.jinja_env.globals["scenario_label"] = _scenario_label
    # What a file input offers: the evidence types the server accepts (one table).
    app.jinja_env.globals["attachment_accept"] = ",".join(ATTACHMENT_EXTENSIONS)
    app.jinja_env.filters["role_label"] = lambda code: ROLE_LABELS.get(
        next((r for r in Role if r.value == code), code), code)
    app.jinja_env.globals["stuck_summary"] = stuck_summary  # a failed step's line

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {"get_locale": get_locale, "stuck_summary": stuck_summary,
                "can": lambda action, target=None: can(current_user, action, target),
                "ROLE_LABELS": ROLE_LABELS, "ROLE_DUTIES": ROLE_DUTIES,
                "NODE_KIND_LABELS": NODE_KIND_LABELS, "AUDIT_ACTION_LABELS": AUDIT_ACTION_LABELS,
                "AUDIT_OBJECT_LABELS": AUDIT_OBJECT_LABELS,
                "AUDIT_RESULT_LABELS": AUDIT_RESULT_LABELS,
                "AUDIT_FIELD_LABELS": AUDIT_FIELD_LABELS}
