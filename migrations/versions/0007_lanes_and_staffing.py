"""department lanes with several roles, and lanes with nobody in scope

Revision ID: 0007_lanes_and_staffing
Revises: 0004_case_event_append_only
Create Date: 2026-12-02 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0007_lanes_and_staffing'
down_revision = '0005_stuck_cases'
branch_labels = None
depends_on = None


def upgrade():
    # A department lane (warning publication, big loop) names the roles that may take its
    # task ("business_admin,department_head,leader_in_charge") and the department they act for.
    with op.batch_alter_table('case_task', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=40),
                              type_=sa.String(length=100), existing_nullable=False)
        batch_op.add_column(sa.Column('department_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_case_task_department_id_department'),
                                    'department', ['department_id'], ['id'])

    op.create_table('staffing_gap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('process_key', sa.String(length=100), nullable=False),
    sa.Column('lane', sa.String(length=100), nullable=False),
    sa.Column('roles', sa.String(length=100), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('scenario_path', sa.String(length=200), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['node_id'], ['platform_node.id'], name=op.f('fk_staffing_gap_node_id_platform_node')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staffing_gap')),
    sa.UniqueConstraint('process_key', 'lane', 'node_id', name='uq_staffing_gap')
    )
    with op.batch_alter_table('staffing_gap', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staffing_gap_process_key'), ['process_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_staffing_gap_node_id'), ['node_id'], unique=False)


def downgrade():
    with op.batch_alter_table('staffing_gap', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staffing_gap_node_id'))
        batch_op.drop_index(batch_op.f('ix_staffing_gap_process_key'))
    op.drop_table('staffing_gap')
    with op.batch_alter_table('case_task', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_case_task_department_id_department'),
                                 type_='foreignkey')
        batch_op.drop_column('department_id')
        batch_op.alter_column('role', existing_type=sa.String(length=100),
                              type_=sa.String(length=40), existing_nullable=False)
