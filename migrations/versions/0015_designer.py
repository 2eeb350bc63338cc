"""test runs pin the files they started on

Revision ID: 0015_designer
Revises: 0014_scale
Create Date: 2026-12-04 16:40:00

A test run keeps the content hash of the draft it started on. A later save of the draft with
other files leaves the test case's engine state behind the files: such a run is shown as
outdated and refuses to move on (start a new run). Existing runs are pinned to the files their
version holds now.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015_designer'
down_revision = '0014_scale'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("handbook_test_run") as batch:
        batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
    op.execute("UPDATE handbook_test_run SET content_hash = (SELECT content_hash FROM "
               "handbook_version WHERE handbook_version.id = handbook_test_run.version_id)")


def downgrade() -> None:
    with op.batch_alter_table("handbook_test_run") as batch:
        batch.drop_column("content_hash")
