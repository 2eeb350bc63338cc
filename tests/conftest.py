"""Test set-up: one application per database, schema from the Alembic migrations, and each
test inside a transaction that is rolled back at the end (savepoints absorb the commits)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from flask_sqlalchemy.session import _app_ctx_id
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from werkzeug.security import generate_password_hash

from app import create_app
from app.extensions import db
from app.models import Role, RoleAssignment, User
from app.services import org
from helpers import PASSWORD, Browser, Clock


@cache
def _password_hash(password: str) -> str:
    """A cheap scrypt (the cost is written into the hash and read back at log-in), computed
    once per password: the suite creates hundreds of accounts and logs in as them."""
    return generate_password_hash(password, method="scrypt:1024:8:1")


def _databases() -> list[str]:
    found = ["sqlite"]
    if os.environ.get("TEST_DATABASE_URL"):
        found.append("postgresql")
    return found


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session", params=_databases())
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    url = os.environ["TEST_DATABASE_URL"]
    from app.config import _database_url

    _reset_postgres(_database_url(url))
    return url


@pytest.fixture(scope="session")
def clock() -> Clock:
    return Clock()


# The suite logs in and posts alerts far faster than people and source systems do; the tests
# of the limits themselves use `app_with` and set their own.
UNTHROTTLED = {"RATE_LIMIT_LOGIN_IP": "100000/minute", "RATE_LIMIT_LOGIN_USER": "100000/minute",
               "RATE_LIMIT_ALERTS": "100000/minute"}


@pytest.fixture(scope="session")
def app(database_url: str, clock: Clock) -> Iterator[Flask]:
    application = create_app(DATABASE_URL=database_url, SECRET_KEY="test-secret-key-0123456789",
                             clock=clock, **UNTHROTTLED)
    application.config["TESTING"] = True
    with application.app_context():
        upgrade()
        org.load_org()
        db.session.commit()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _reset_clock(clock: Clock) -> None:
    clock.now = datetime(2026, 7, 26, 2, 0, tzinfo=UTC)


@pytest.fixture
def dbconn(app: Flask) -> Iterator[sa.Connection]:
    """Everything the test and its requests write happens in one transaction, rolled back."""
    with app.app_context():
        connection = db.engine.connect()
    transaction = connection.begin()
    original = db.session
    db.session = scoped_session(  # type: ignore[assignment]
        sessionmaker(class_=Session, bind=connection, join_transaction_mode="create_savepoint"),
        scopefunc=_app_ctx_id,
    )
    try:
        yield connection
    finally:
        with app.app_context():
            db.session.remove()
        db.session = original
        transaction.rollback()
        connection.close()


@pytest.fixture
def app_with(database_url: str, clock: Clock, dbconn: sa.Connection) -> Callable[..., Flask]:
    """`app_with(RATE_LIMIT_ALERTS="3/minute")`: another application with its own settings on
    the same database, inside the same rolled-back test transaction."""

    def make(**settings: Any) -> Flask:
        other = create_app(DATABASE_URL=database_url, SECRET_KEY="test-secret-key-0123456789",
                           clock=clock, **settings)
        other.config["TESTING"] = True
        return other

    return make


@pytest.fixture
def ctx(app: Flask, dbconn: sa.Connection) -> Iterator[Flask]:
    """An application context for calling services directly (not for client requests)."""
    with app.app_context():
        yield app


@pytest.fixture
def client(app: Flask, dbconn: sa.Connection) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user(app: Flask, dbconn: sa.Connection) -> Callable[..., dict[str, Any]]:
    """Create an account holding roles on nodes given by code; returns its id and name."""
    counter = iter(range(1, 10_000))

    def factory(*roles: tuple[Role, str], username: str | None = None, home: str | None = None,
                password: str = PASSWORD, active: bool = True, phone: str | None = None,
                **overrides: Any) -> dict[str, Any]:
        with app.app_context():
            name = username or f"user{next(counter)}"
            home_node = org.node_by_code(home or (roles[0][1] if roles else "district"))
            user = User(username=name, display_name=f"测试{name}", active=active,
                        password_hash=_password_hash(password), home_node=home_node, phone=phone,
                        password_changed_at=app.extensions["clock"](), **overrides)
            user.assignments = [RoleAssignment(role=r, node=org.node_by_code(code))
                                for r, code in roles]
            db.session.add(user)
            db.session.commit()
            return {"id": user.id, "username": name, "password": password}

    return factory


@pytest.fixture
def browser(client: FlaskClient) -> Browser:
    return Browser(client)


@pytest.fixture
def as_role(app: Flask, dbconn: sa.Connection, make_user: Callable[..., dict[str, Any]]
            ) -> Callable[..., Browser]:
    """`as_role(Role.RESPONDER, "town.02")`: a logged-in browser for a new account."""

    def login(*roles: tuple[Role, str] | Role, node: str = "district", **kw: Any) -> Browser:
        pairs = [r if isinstance(r, tuple) else (r, node) for r in roles]
        account = make_user(*pairs, **kw)
        b = Browser(app.test_client())
        response = b.login(account["username"], account["password"])
        assert response.status_code == 302, response.get_data(as_text=True)
        b.account = account  # type: ignore[attr-defined]
        return b

    return login


def zh(path: str = "app/translations/zh/LC_MESSAGES/messages.po") -> Path:
    return Path(__file__).resolve().parent.parent / path
