"""oversight: delegated tasks, case followers, indexes for the case list and the board

Revision ID: 0013_oversight
Revises: 0012_des_runs
Create Date: 2026-12-04 10:30:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0013_oversight'
down_revision = '0012_des_runs'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('case_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delegated_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('delegated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delegation_reason', sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_case_task_delegated_by_id_user_account'),
                                    'user_account', ['delegated_by_id'], ['id'])
    op.create_table(
        'case_follower',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['warning_case.id'],
                                name=op.f('fk_case_follower_case_id_warning_case')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_case_follower_user_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_follower')),
        sa.UniqueConstraint('case_id', 'user_id', name='uq_case_follower'),
    )
    op.create_index(op.f('ix_case_follower_case_id'), 'case_follower', ['case_id'])
    op.create_index(op.f('ix_case_follower_user_id'), 'case_follower', ['user_id'])
    op.create_index('ix_case_opened_at', 'warning_case', ['opened_at'])
    op.create_index('ix_case_closed_at', 'warning_case', ['closed_at'])
    op.create_index('ix_case_board', 'warning_case', ['status', 'level', 'scenario'])
    op.create_index('ix_case_loop_level', 'warning_case', ['loop_level'])
    open_real = sa.text("status = 'open' AND is_test IS false")
    op.create_index('ix_case_open_board', 'warning_case',
                    ['scenario', 'level', 'node_id', 'loop_level', 'owner_department_id',
                     'stuck_since', 'due_at'], sqlite_where=open_real, postgresql_where=open_real)


def downgrade():
    op.drop_index('ix_case_open_board', table_name='warning_case')
    op.drop_index('ix_case_loop_level', table_name='warning_case')
    op.drop_index('ix_case_board', table_name='warning_case')
    op.drop_index('ix_case_closed_at', table_name='warning_case')
    op.drop_index('ix_case_opened_at', table_name='warning_case')
    op.drop_index(op.f('ix_case_follower_user_id'), table_name='case_follower')
    op.drop_index(op.f('ix_case_follower_case_id'), table_name='case_follower')
    op.drop_table('case_follower')
    with op.batch_alter_table('case_task', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_case_task_delegated_by_id_user_account'),
                                 type_='foreignkey')
        batch_op.drop_column('delegation_reason')
        batch_op.drop_column('delegated_at')
        batch_op.drop_column('delegated_by_id')
