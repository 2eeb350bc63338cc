"""engine states compressed with lz4 on PostgreSQL

Revision ID: 0017_state_lz4
Revises: 0016_case_tally
Create Date: 2026-12-05 01:00:00

"""
from alembic import op

revision = '0017_state_lz4'
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


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_SET.format(method="lz4"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_SET.format(method="pglz"))
