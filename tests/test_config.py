"""Settings are validated once at start-up and the factory has no side effects."""

from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigError, load_settings


@pytest.mark.parametrize("name, value, words", [
    ("SESSION_IDLE_MINUTES", "soon", "SESSION_IDLE_MINUTES"),
    ("SESSION_IDLE_MINUTES", "0", "greater than 0"),
    ("SESSION_ABSOLUTE_HOURS", "0", "greater than 0"),
    ("SESSION_ABSOLUTE_HOURS", "all day", "SESSION_ABSOLUTE_HOURS"),
    ("DATABASE_URL", "mysql://x", "only sqlite"),
    ("DEFAULT_LOCALE", "fr", "supported locales"),
    ("SESSION_COOKIE_SECURE", "maybe", "true/false"),
    ("SECRET_KEY", "short", "at least 16"),
    ("REPORTS_DATABASE_URL", "mysql://replica", "only sqlite"),
    ("TIMEZONE", "Mars/Olympus", "IANA time zone"),
])
def test_a_bad_setting_stops_start_up_and_names_itself(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({name: value})
    assert name in str(err.value)
    assert words in str(err.value)


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="LOGIN_MAX_FAILURES"):
        create_app(LOGIN_MAX_FAILURES="many")


def test_postgres_urls_use_psycopg3() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://postgres@127.0.0.1/test"})
    assert settings["DATABASE_URL"].startswith("postgresql+psycopg://")


def test_factory_only_wires(tmp_path: Path) -> None:
    db_file = tmp_path / "never.db"
    app = create_app(DATABASE_URL=f"sqlite:///{db_file}")
    assert not db_file.exists()
    assert "scheduler" not in app.extensions
    assert {"auth", "main", "admin", "api"} <= set(app.blueprints)


def test_reports_read_from_the_replica_when_one_is_set(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from app.extensions import db, reports_session

    replica = tmp_path / "replica.db"
    engine = sa.create_engine(f"sqlite:///{replica}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE marker (origin TEXT)"))
        conn.execute(sa.text("INSERT INTO marker VALUES ('replica')"))
    engine.dispose()
    app = create_app(DATABASE_URL=f"sqlite:///{tmp_path / 'primary.db'}",
                     REPORTS_DATABASE_URL=f"sqlite:///{replica}")
    with app.app_context():
        session = reports_session()
        assert session is not db.session
        assert session is reports_session()  # one per application context
        assert session.scalar(sa.text("SELECT origin FROM marker")) == "replica"
    with app.app_context():
        assert reports_session() is not session
        db.engines["reports"].dispose()
    plain = create_app(DATABASE_URL=f"sqlite:///{tmp_path / 'primary.db'}")
    with plain.app_context():
        assert reports_session() is db.session
def test_the_time_zone_is_one_setting(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from app.timezone import local_zone

    app = create_app(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", TIMEZONE="Europe/Berlin")
    with app.app_context():
        assert str(local_zone()) == "Europe/Berlin"
        assert app.config["BABEL_DEFAULT_TIMEZONE"] == "Europe/Berlin"
        new_year = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
        assert new_year.astimezone(local_zone()).year == 2027


def test_local_dates_follow_the_time_zone_setting() -> None:
    """Report periods, case-list dates and export stamps use TIMEZONE, not a fixed zone."""
    from datetime import UTC, datetime

    from app import create_app
    from app.services import figures
    from app.timezone import local_zone

    moment = datetime(2026, 7, 31, 20, 0, tzinfo=UTC)  # 1 August, 04:00 in Shanghai
    for zone, month in (("Asia/Shanghai", 8), ("UTC", 7)):
        app = create_app(DATABASE_URL="sqlite://", SECRET_KEY="tz-secret-0123456789abcdef",
                         TIMEZONE=zone)
        with app.app_context():
            period = figures.Period.parse(None, now=moment)
            assert (period.start.month, str(local_zone())) == (month, zone)
            assert period.start_utc.astimezone(local_zone()).hour == 0


def test_postgresql_connections_run_without_jit(app, dbconn) -> None:
    """The application's short statements must not pay for JIT compilation (a planner
    estimate over a few thousand rows crossed its threshold and spent 20 ms compiling)."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            assert "connect_args" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]
            return
        with db.engine.connect() as conn:
            assert conn.scalar(text("SHOW jit")) == "off"
