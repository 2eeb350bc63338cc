"""monthly partitions of alert and case_event on PostgreSQL

Revision ID: 0014_scale
Revises: 0013_oversight
Create Date: 2026-12-04 11:00:00

The two tables that grow without end become range-partitioned by month (alert by received_at,
case_event by at; calendar months in Asia/Shanghai), so that old months can be archived or
dropped whole and queries on recent data touch recent partitions only. SQLite keeps plain
tables: this migration does nothing there.

A unique constraint on a partitioned table must contain the partition key:
- case_event (case_id, seq) becomes (case_id, seq, at). Writers of one case are serialised by
  the case's row lock and its optimistic version counter, and the hash chain shows any gap or
  double, so the constraint was a second guard, not the first.
- alert (api_key_id, idempotency_key) must stay unique across months: a retry can come after
  midnight. A small table `alert_idempotency_key` holds the keys with that primary key and an
  insert trigger on alert fills it, so a duplicate key still fails the insert with a unique
  violation (the intake service relies on it).
Indexes, foreign keys and triggers (the append-only trigger of 0004) are carried over as they
are. Nothing points at these two tables with a foreign key.
"""
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = '0014_scale'
down_revision = '0013_oversight'
branch_labels = None
depends_on = None

TABLES = {"alert": "received_at", "case_event": "at"}
AHEAD_MONTHS = 3
SHANGHAI = ZoneInfo("Asia/Shanghai")

_IDEMPOTENCY = """
CREATE TABLE alert_idempotency_key (
  api_key_id integer NOT NULL,
  idempotency_key varchar(120) NOT NULL,
  received_at timestamp with time zone NOT NULL,
  CONSTRAINT pk_alert_idempotency_key PRIMARY KEY (api_key_id, idempotency_key)
);
CREATE INDEX ix_alert_idempotency_key_received_at ON alert_idempotency_key (received_at);
CREATE FUNCTION alert_idempotency_unique() RETURNS trigger AS $$
BEGIN
  INSERT INTO alert_idempotency_key (api_key_id, idempotency_key, received_at)
    VALUES (NEW.api_key_id, NEW.idempotency_key, NEW.received_at);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER alert_idempotency_unique AFTER INSERT ON alert
  FOR EACH ROW WHEN (NEW.idempotency_key IS NOT NULL AND NEW.api_key_id IS NOT NULL)
  EXECUTE FUNCTION alert_idempotency_unique();
"""


def _month(moment: datetime) -> date:
    local = moment.astimezone(SHANGHAI)
    return date(local.year, local.month, 1)


def _add(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _bound(month: date) -> str:
    return f"{month.isoformat()} 00:00:00+08"


def _definition(conn, table):
    """Indexes, constraints and triggers of `table`, as SQL to run again."""
    constraints = conn.execute(sa.text(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:t AS regclass)"), {"t": table}).all()
    names = {c[0] for c in constraints}
    indexes = [row[1] for row in conn.execute(sa.text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = :t"), {"t": table}) if row[0] not in names]
    triggers = list(conn.scalars(sa.text(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal"), {"t": table}))
    return constraints, indexes, triggers


def _rebuild(conn, table, column, *, partitioned):
    """Copy `table` into a new one of the same shape, partitioned by month of `column` or
    plain, keeping its id sequence, indexes, constraints and triggers."""
    constraints, indexes, triggers = _definition(conn, table)
    old = f"{table}_before_0009"
    conn.execute(sa.text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    tail = f" PARTITION BY RANGE ({column})" if partitioned else ""
    conn.execute(sa.text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS){tail}'))
    if partitioned:
        first = conn.scalar(sa.text(f'SELECT min("{column}") FROM "{old}"'))
        now = datetime.now(UTC)
        month = _month(min(first, now) if first is not None else now)
        last = _add(_month(now), AHEAD_MONTHS)
        while month <= last:
            conn.execute(sa.text(
                f'CREATE TABLE "{table}_y{month.year:04d}m{month.month:02d}" PARTITION OF '
                f"\"{table}\" FOR VALUES FROM ('{_bound(month)}') TO ('{_bound(_add(month, 1))}')"))
            month = _add(month, 1)
        conn.execute(sa.text(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT'))
    conn.execute(sa.text(f'INSERT INTO "{table}" SELECT * FROM "{old}"'))
    conn.execute(sa.text(f'ALTER SEQUENCE "{table}_id_seq" OWNED BY "{table}".id'))
    conn.execute(sa.text(f'DROP TABLE "{old}"'))
    for name, kind, definition in constraints:
        if kind == "p":
            definition = f"PRIMARY KEY (id, {column})" if partitioned else "PRIMARY KEY (id)"
        elif kind == "u":
            columns = [c.strip() for c in definition[definition.index("(") + 1:
                                                     definition.rindex(")")].split(",")]
            if partitioned:
                if table == "alert":
                    continue  # kept unique across months by alert_idempotency_key
                columns.append(column)
            elif column in columns and len(columns) > 1:
                columns.remove(column)
            definition = f"UNIQUE ({', '.join(columns)})"
        conn.execute(sa.text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
    for definition in indexes:
        conn.execute(sa.text(definition))
    for definition in triggers:
        if "alert_idempotency_unique" not in definition:
            conn.execute(sa.text(definition))


def upgrade():
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table, column in TABLES.items():
        _rebuild(conn, table, column, partitioned=True)
    conn.execute(sa.text(_IDEMPOTENCY))
    conn.execute(sa.text(
        "INSERT INTO alert_idempotency_key (api_key_id, idempotency_key, received_at) "
        "SELECT api_key_id, idempotency_key, min(received_at) FROM alert "
        "WHERE idempotency_key IS NOT NULL AND api_key_id IS NOT NULL "
        "GROUP BY api_key_id, idempotency_key"))
    # Lookups of a retry by its key still use an index on alert itself.
    conn.execute(sa.text(
        "CREATE INDEX ix_alert_idempotency ON alert (api_key_id, idempotency_key)"))


def downgrade():
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    conn.execute(sa.text("DROP TRIGGER alert_idempotency_unique ON alert"))
    conn.execute(sa.text("DROP INDEX ix_alert_idempotency"))
    for table, column in TABLES.items():
        _rebuild(conn, table, column, partitioned=False)
    conn.execute(sa.text("ALTER TABLE alert ADD CONSTRAINT uq_alert_idempotency "
                         "UNIQUE (api_key_id, idempotency_key)"))
    conn.execute(sa.text("DROP TABLE alert_idempotency_key"))
    conn.execute(sa.text("DROP FUNCTION alert_idempotency_unique()"))
