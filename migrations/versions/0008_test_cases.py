"""test cases of draft handbooks, kept apart from real work

Revision ID: 0008_test_cases
Revises: 0007_lanes_and_staffing
Create Date: 2026-12-04 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0008_test_cases'
down_revision = '0007_lanes_and_staffing'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('warning_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_test', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_warning_case_is_test'), ['is_test'], unique=False)


def downgrade():
    with op.batch_alter_table('warning_case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_warning_case_is_test'))
        batch_op.drop_column('is_test')
