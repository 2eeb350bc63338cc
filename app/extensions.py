"""Extensions created unbound here and bound to an application in create_app."""

from __future__ import annotations

from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, current_app, g
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session

from app.config import REPORTS_BIND
from app.models.base import Base

db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


def new_scheduler(*, workers: int = 10) -> BackgroundScheduler:
    """A scheduler per application, so tests and workers never share one; `workers` jobs may
    run at once."""
    return BackgroundScheduler(timezone="UTC", executors={"default": ThreadPoolExecutor(workers)},
                               job_defaults={"coalesce": True, "max_instances": 1})


def configure_sqlite(engine: Engine) -> None:
    """Make SQLite transactional the way PostgreSQL is.

    The sqlite3 driver delays BEGIN and commits around SAVEPOINTs on its own; taking over
    BEGIN gives real transactions and savepoints. Foreign keys are off in SQLite by default.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def reports_session() -> Session:
    """The session reports and figures read through.

    With `REPORTS_DATABASE_URL` set it is a session on that read replica (one per application
    context, closed at its end), so heavy reads never compete with intake and the inbox on the
    primary; without it, the primary's `db.session`. Use it for reads only: a replica refuses
    writes, and what a report writes (an export's audit record) belongs on `db.session`.
    """
    if REPORTS_BIND not in current_app.config.get("SQLALCHEMY_BINDS", {}):
        return db.session  # type: ignore[return-value]
    session = g.get("_reports_session")
    if session is None:
        session = Session(bind=db.engines[REPORTS_BIND])
        g._reports_session = session
    return session


def init_reports_session(app: Flask) -> None:
    @app.teardown_appcontext
    def _close_reports_session(_exc: BaseException | None) -> None:
        session = g.pop("_reports_session", None)
        if session is not None:
            session.close()
