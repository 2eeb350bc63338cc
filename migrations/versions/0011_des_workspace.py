"""drafts edited in the browser: revision counter, base version, last editor; review notices

Revision ID: 0011_des_workspace
Revises: 0010_reports
Create Date: 2026-12-04 10:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0011_des_workspace'
down_revision = '0010_reports'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('handbook_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False,
                                      server_default='1'))
        batch_op.add_column(sa.Column('base_version_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('updated_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_handbook_version_base', 'handbook_version',
                                    ['base_version_id'], ['id'])
        batch_op.create_foreign_key('fk_handbook_version_updated_by', 'user_account',
                                    ['updated_by_id'], ['id'])
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handbook_version_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_notification_handbook_version', 'handbook_version',
                                    ['handbook_version_id'], ['id'])


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint('fk_notification_handbook_version', type_='foreignkey')
        batch_op.drop_column('handbook_version_id')
    with op.batch_alter_table('handbook_version', schema=None) as batch_op:
        batch_op.drop_constraint('fk_handbook_version_updated_by', type_='foreignkey')
        batch_op.drop_constraint('fk_handbook_version_base', type_='foreignkey')
        batch_op.drop_column('updated_by_id')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('base_version_id')
        batch_op.drop_column('revision')
