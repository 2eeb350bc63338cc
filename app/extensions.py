"""Extensions created unbound here and bound to an application in create_app."""

from __future__ import annotations

from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import Connection, Engine, event

from app.models.base import Base

db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


def new_scheduler() -> BackgroundScheduler:
    """A scheduler per application, so tests and workers never share one."""
    return BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})


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
