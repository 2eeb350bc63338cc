"""cases whose engine step failed are marked stuck, visible and retriable

Revision ID: 0005_stuck_cases
Revises: 0004_case_event_append_only
Create Date: 2026-12-04 07:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0005_stuck_cases'
down_revision = '0005_session_generation'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("warning_case") as batch:
        batch.add_column(sa.Column("stuck_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("stuck_attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("failure", sa.JSON(), nullable=True))
        batch.create_index("ix_warning_case_stuck_since", ["stuck_since"])


def downgrade():
    with op.batch_alter_table("warning_case") as batch:
        batch.drop_index("ix_warning_case_stuck_since")
        batch.drop_column("failure")
        batch.drop_column("stuck_attempts")
        batch.drop_column("stuck_since")
