"""case storage: no index twice; on PostgreSQL, states compressed with lz4 and room for updates

Revision ID: 0017_case_storage
Revises: 0016_case_tally
Create Date: 2026-12-05 01:00:00

"""
from alembic import op

revision = '0017_case_storage'
down_revision = '0016_case_tally'
branch_labels = None
depends_on = None

# A case's engine state is some 15 kB of JSON, written at every step and compressed when
# stored. lz4 (PostgreSQL 14 and later, when built with it) compresses it in about half the
# time of the default pglz, at a similar size; states written before keep their compression.
# A server without lz4 keeps pglz: the ALTER is skipped, not failed.
_SET = """
DO $$
BEGIN
  ALTER TABLE warning_case ALTER COLUMN state SET COMPRESSION {method};
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
  RAISE NOTICE 'warning_case.state keeps its compression: %', SQLERRM;
END $$;
"""

# Repeats update a case's counters, none of them indexed. With a fifth of each page left
# free, the new row version goes on the same page and the case's twenty-odd indexes are not
# written again (a heap-only update). Pages written from now on keep the room.
_FILLFACTOR = "ALTER TABLE warning_case SET (fillfactor = {percent})"


# Indexes every new case, task and event wrote for nothing: two were created twice on the
# same column of the cases (0010 by the column, 0013 by name), and a case's tasks and events
# are found by the unique index that begins with their case.
_REDUNDANT = (("warning_case", "ix_case_opened_at", ["opened_at"]),
              ("warning_case", "ix_case_closed_at", ["closed_at"]),
              ("case_event", "ix_case_event_case_id", ["case_id"]),
              ("case_task", "ix_case_task_case_id", ["case_id"]))


def upgrade():
    for table, name, _columns in _REDUNDANT:
        op.drop_index(name, table_name=table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_SET.format(method="lz4"))
        op.execute(_FILLFACTOR.format(percent=80))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FILLFACTOR.format(percent=100))
        op.execute(_SET.format(method="pglz"))
    for table, name, columns in _REDUNDANT:
        op.create_index(name, table, columns)
