"""Extensions created unbound here and bound to an application in create_app."""

from __future__ import annotations

from apscheduler.schedulers.background import BackgroundScheduler
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from app.models.base import Base

db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


def new_scheduler() -> BackgroundScheduler:
    """A scheduler per application, so tests and workers never share one."""
    return BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
