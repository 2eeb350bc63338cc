"""intake writes: on PostgreSQL, alert keys recorded once per statement, two alert indexes
only where they are read, and the test-flag guard only when the flag changes

Revision ID: 0018_intake_writes
Revises: 0017_case_storage
Create Date: 2026-12-05 03:40:00

"""
from alembic import op

revision = '0018_intake_writes'
down_revision = '0017_case_storage'
branch_labels = None
depends_on = None

# A batch of keyed alerts is one INSERT: its keys go into alert_idempotency_key in one
# statement from the rows it inserted (a transition table), instead of a PL/pgSQL call and an
# INSERT for each row. The key's primary key still refuses a key stored twice, and the whole
# INSERT fails with it, as before. Alerts are only ever inserted through the partitioned
# table, whose statement triggers see the rows of every partition.
_KEYS_PER_STATEMENT = """
CREATE FUNCTION alert_idempotency_keys() RETURNS trigger AS $$
BEGIN
  INSERT INTO alert_idempotency_key (api_key_id, idempotency_key, received_at)
    SELECT api_key_id, idempotency_key, received_at FROM inserted
    WHERE idempotency_key IS NOT NULL AND api_key_id IS NOT NULL;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER alert_idempotency_unique ON alert;
DROP FUNCTION alert_idempotency_unique();
CREATE TRIGGER alert_idempotency_keys AFTER INSERT ON alert REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION alert_idempotency_keys();
"""
_KEYS_PER_ROW = """
CREATE FUNCTION alert_idempotency_unique() RETURNS trigger AS $$
BEGIN
  INSERT INTO alert_idempotency_key (api_key_id, idempotency_key, received_at)
    VALUES (NEW.api_key_id, NEW.idempotency_key, NEW.received_at);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER alert_idempotency_keys ON alert;
DROP FUNCTION alert_idempotency_keys();
CREATE TRIGGER alert_idempotency_unique AFTER INSERT ON alert
  FOR EACH ROW WHEN (NEW.idempotency_key IS NOT NULL AND NEW.api_key_id IS NOT NULL)
  EXECUTE FUNCTION alert_idempotency_unique();
"""

# Most alerts carry no idempotency key and come from a registered point: the indexes that
# find a retry by its key and the unknown points' alerts need not hold the others (every
# lookup by key compares it, which only a key satisfies; the unknown points' list asks for
# `unknown_point IS TRUE`).
_PARTIAL = (("ix_alert_idempotency", "(api_key_id, idempotency_key)",
             "idempotency_key IS NOT NULL"),
            ("ix_alert_unknown_point", "(unknown_point)", "unknown_point IS TRUE"))

# The guard that a case never changes between test and real ran a PL/pgSQL call for every
# update of every case; the same check as a trigger condition is evaluated without one.
_TEST_FLAG = """
DROP TRIGGER warning_case_test_flag ON warning_case;
CREATE TRIGGER warning_case_test_flag BEFORE UPDATE ON warning_case
  FOR EACH ROW {condition}EXECUTE FUNCTION warning_case_test_flag_fixed();
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_KEYS_PER_STATEMENT)
    for name, columns, where in _PARTIAL:
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON alert {columns} WHERE {where}")
    op.execute(_TEST_FLAG.format(
        condition="WHEN (NEW.is_test IS DISTINCT FROM OLD.is_test) "))


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_TEST_FLAG.format(condition=""))
    for name, columns, _where in _PARTIAL:
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON alert {columns}")
    op.execute(_KEYS_PER_ROW)
