"""Application factory: settings, extensions, blueprints and CLI; nothing else happens here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from app.config import PROJECT_ROOT, flask_config, load_settings
from app.extensions import (
    babel,
    configure_sqlite,
    csrf,
    db,
    init_reports_session,
    login_manager,
    migrate,
)
from app.inputs import AppRequest, IdConverter
from app.rate_limits import install_rate_limits
from app.security import install_security_headers

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(config: Mapping[str, Any] | None = None, *, clock: Clock | None = None,
               start_scheduler: bool = False, **overrides: Any) -> Flask:
    """Build the application.

    `config` and `overrides` win over the environment; every value is validated and a bad one
    stops start-up with a message naming the setting. `clock` is what "now" means to the app
    (tests move it). The scheduler runs only when `start_scheduler` is true.
    """
    settings = load_settings(overrides={**(config or {}), **overrides})
    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"),
                static_folder=str(PROJECT_ROOT / "static"), static_url_path="/static",
                template_folder="web/templates")
    app.request_class = AppRequest
    app.config.from_mapping(flask_config(settings))
    # Before any blueprint: every `<int:...>` route takes only ids the database can hold.
    app.url_map.converters["int"] = IdConverter
    app.extensions["clock"] = clock or _utc_now

    db.init_app(app)
    with app.app_context():
        configure_sqlite(db.engine)  # creating the engine does not connect
    init_reports_session(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    install_security_headers(app)

    from app.web.i18n import select_locale, select_timezone

    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)

    from app.api import bp as api_bp
    from app.web import register_web

    register_web(app)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)
    install_rate_limits(app)

    from app.metrics import install_metrics

    install_metrics(app)

    from app.cli import register_cli

    register_cli(app)

    if start_scheduler:
        from app.jobs import start_scheduler as _start

        _start(app)
    return app
