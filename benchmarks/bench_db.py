"""What the PostgreSQL benchmarks share: a scratch database of their own, a settable clock."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from app.config import _database_url


def scratch_database(base: str, name: str) -> tuple[sa.Engine, str]:
    """Create an empty database `name` beside `base` (dropping one left over); returns an
    admin engine (for `drop_database`) and the new database's URL."""
    admin = sa.create_engine(_database_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.make_url(_database_url(base)).set(database=name)
    return admin, url.render_as_string(hide_password=False)


def drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


class Clock:
    """What "now" means to the application under test; benchmarks move it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 7, 26, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now
