"""Monthly partitions of the two tables that grow without end: `alert` (by received_at) and
`case_event` (by at), on PostgreSQL (migration 0014_scale makes them partitioned).

Months are calendar months of Asia/Shanghai, fixed like the bounds migration 0014 created
(the TIMEZONE setting changes how times are shown, not the storage layout). The scheduler keeps
partitions ready a few months ahead (a DEFAULT partition catches anything else, so an insert
never fails for want of one) and, only when `LOG_RETENTION_MONTHS` is set, drops months older
than that; never younger than six months (MLPS level 3 keeps logs at least six months).
SQLite keeps plain tables: every function here does nothing there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

PLATFORM_TZ = ZoneInfo("Asia/Shanghai")  # the storage layout's zone, not TIMEZONE
PARTITIONED = {"alert": "received_at", "case_event": "at"}
MIN_RETENTION_MONTHS = 6
AHEAD_MONTHS = 3
_NAME = re.compile(r"^(alert|case_event)_y(\d{4})m(\d{2})$")


def month_start(moment: datetime) -> date:
    local = moment.astimezone(PLATFORM_TZ)
    return date(local.year, local.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


def _bound(month: date) -> str:
    return f"{month.isoformat()} 00:00:00+08"  # midnight in Shanghai starts the month


def is_partitioned(conn: Connection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.scalar(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = :t AND c.relnamespace = current_schema()::regnamespace"),
        {"t": table}))


def monthly_partitions(conn: Connection, table: str) -> list[date]:
    """The months that have their own partition of `table`, oldest first."""
    names = conn.scalars(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t "
        "AND p.relnamespace = current_schema()::regnamespace"), {"t": table}).all()
    found = []
    for name in names:
        match = _NAME.match(name)
        if match and match.group(1) == table:
            found.append(date(int(match.group(2)), int(match.group(3)), 1))
    return sorted(found)


def create_month(conn: Connection, table: str, month: date) -> str:
    name = partition_name(table, month)
    conn.execute(text(
        f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}" '
        f"FOR VALUES FROM ('{_bound(month)}') TO ('{_bound(add_months(month, 1))}')"))
    return name


@dataclass(frozen=True)
class Maintenance:
    created: list[str]
    dropped: list[str]


def maintain(conn: Connection, now: datetime, *, retention_months: int = 0,
             ahead: int = AHEAD_MONTHS) -> Maintenance:
    """Create this month's and the next `ahead` months' partitions where missing; with
    `retention_months` (0: keep everything), drop whole months that ended before that many
    months ago. Refuses a retention shorter than six months."""
    if retention_months and retention_months < MIN_RETENTION_MONTHS:
        raise ValueError(f"logs are kept at least {MIN_RETENTION_MONTHS} months")
    created: list[str] = []
    dropped: list[str] = []
    this_month = month_start(now)
    for table in PARTITIONED:
        if not is_partitioned(conn, table):
            continue
        have = set(monthly_partitions(conn, table))
        for n in range(ahead + 1):
            month = add_months(this_month, n)
            if month not in have:
                created.append(create_month(conn, table, month))
        if retention_months:
            oldest_kept = add_months(this_month, -retention_months)
            for month in sorted(have):
                if add_months(month, 1) <= oldest_kept:
                    name = partition_name(table, month)
                    conn.execute(text(f'DROP TABLE "{name}"'))
                    dropped.append(name)
            if table == "alert" and dropped:
                conn.execute(text("DELETE FROM alert_idempotency_key WHERE received_at < :cut"),
                             {"cut": datetime.fromisoformat(_bound(oldest_kept))})
    return Maintenance(created, dropped)
