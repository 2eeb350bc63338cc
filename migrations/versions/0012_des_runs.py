"""test runs of drafts, migration of running cases, confirmed inferred values

Revision ID: 0012_des_runs
Revises: 0011_des_workspace
Create Date: 2026-12-04 10:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0012_des_runs'
down_revision = '0011_des_workspace'
branch_labels = None
depends_on = None

# A test case's history may be deleted with the test case (and only then); the test flag is
# fixed when the case is written, so no real case can be turned into a deletable one.
_PG = """
CREATE OR REPLACE FUNCTION case_event_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' AND EXISTS (
      SELECT 1 FROM warning_case WHERE id = OLD.case_id AND is_test) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'case_event is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE FUNCTION warning_case_test_flag_fixed() RETURNS trigger AS $$
BEGIN
  IF NEW.is_test IS DISTINCT FROM OLD.is_test THEN
    RAISE EXCEPTION 'warning_case.is_test never changes';
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER warning_case_test_flag BEFORE UPDATE ON warning_case
  FOR EACH ROW EXECUTE FUNCTION warning_case_test_flag_fixed();
"""
_PG_DOWN = """
DROP TRIGGER IF EXISTS warning_case_test_flag ON warning_case;
DROP FUNCTION IF EXISTS warning_case_test_flag_fixed();
CREATE OR REPLACE FUNCTION case_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'case_event is append-only';
END;
$$ LANGUAGE plpgsql;
"""
_SQLITE = (
    "DROP TRIGGER IF EXISTS case_event_no_delete",
    """CREATE TRIGGER case_event_no_delete BEFORE DELETE ON case_event
       WHEN NOT EXISTS (SELECT 1 FROM warning_case WHERE id = OLD.case_id AND is_test)
       BEGIN SELECT RAISE(ABORT, 'case_event is append-only'); END""",
    """CREATE TRIGGER warning_case_test_flag BEFORE UPDATE OF is_test ON warning_case
       WHEN NEW.is_test IS NOT OLD.is_test
       BEGIN SELECT RAISE(ABORT, 'warning_case.is_test never changes'); END""",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS warning_case_test_flag",
    "DROP TRIGGER IF EXISTS case_event_no_delete",
    """CREATE TRIGGER case_event_no_delete BEFORE DELETE ON case_event
       BEGIN SELECT RAISE(ABORT, 'case_event is append-only'); END""",
)


def upgrade():
    op.create_table(
        'handbook_test_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('item_code', sa.String(length=60), nullable=False),
        sa.Column('level', sa.String(length=10), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('clock_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['warning_case.id'],
                                name=op.f('fk_handbook_test_run_case_id_warning_case')),
        sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'],
                                name=op.f('fk_handbook_test_run_created_by_id_user_account')),
        sa.ForeignKeyConstraint(['version_id'], ['handbook_version.id'],
                                name=op.f('fk_handbook_test_run_version_id_handbook_version')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_handbook_test_run')),
        sa.UniqueConstraint('case_id', name=op.f('uq_handbook_test_run_case_id')),
    )
    op.create_index(op.f('ix_handbook_test_run_version_id'), 'handbook_test_run', ['version_id'])
    op.create_table(
        'case_migration_batch',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('handbook_key', sa.String(length=60), nullable=False),
        sa.Column('target_version_id', sa.Integer(), nullable=False),
        sa.Column('case_ids', sa.JSON(), nullable=False),
        sa.Column('results', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('batch_version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'],
                                name=op.f('fk_case_migration_batch_created_by_id_user_account')),
        sa.ForeignKeyConstraint(['target_version_id'], ['handbook_version.id'],
                                name=op.f('fk_case_migration_batch_target_version_id_handbook_version')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_migration_batch')),
    )
    op.create_table(
        'handbook_value_confirmation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('path', sa.String(length=300), nullable=False),
        sa.Column('value', sa.JSON(), nullable=True),
        sa.Column('confirmed_by_id', sa.Integer(), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['confirmed_by_id'], ['user_account.id'],
                                name=op.f('fk_handbook_value_confirmation_confirmed_by_id_user_account')),
        sa.ForeignKeyConstraint(['version_id'], ['handbook_version.id'],
                                name=op.f('fk_handbook_value_confirmation_version_id_handbook_version')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_handbook_value_confirmation')),
        sa.UniqueConstraint('version_id', 'path', name='uq_handbook_value_confirmation'),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG)
    else:
        for statement in _SQLITE:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_DOWN)
    else:
        for statement in _SQLITE_DOWN:
            op.execute(statement)
    op.drop_table('handbook_value_confirmation')
    op.drop_table('case_migration_batch')
    op.drop_index(op.f('ix_handbook_test_run_version_id'), table_name='handbook_test_run')
    op.drop_table('handbook_test_run')
