"""sensing registry, feeds, maintenance, filing

Revision ID: 0009_sensing
Revises: 0008_test_cases
Create Date: 2026-12-04 10:19:23.201792

"""
import sqlalchemy as sa
from alembic import op

revision = '0009_sensing'
down_revision = '0008_test_cases'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('coverage_snapshot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('scenario', sa.String(length=40), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('registered', sa.Integer(), nullable=False),
    sa.Column('monitored', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['platform_node.id'], name=op.f('fk_coverage_snapshot_node_id_platform_node')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coverage_snapshot')),
    sa.UniqueConstraint('day', 'scenario', 'node_id', name='uq_coverage_snapshot_day')
    )
    with op.batch_alter_table('coverage_snapshot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coverage_snapshot_day'), ['day'], unique=False)

    op.create_table('rule_filing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('submitted_by_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['user_account.id'], name=op.f('fk_rule_filing_acknowledged_by_id_user_account')),
    sa.ForeignKeyConstraint(['node_id'], ['platform_node.id'], name=op.f('fk_rule_filing_node_id_platform_node')),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['user_account.id'], name=op.f('fk_rule_filing_submitted_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_filing'))
    )
    with op.batch_alter_table('rule_filing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_filing_node_id'), ['node_id'], unique=False)

    op.create_table('dead_letter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('topic', sa.String(length=300), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=60), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_key.id'], name=op.f('fk_dead_letter_api_key_id_api_key')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letter'))
    )
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letter_received_at'), ['received_at'], unique=False)

    op.create_table('feed_tally',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('point_code', sa.String(length=80), nullable=False),
    sa.Column('readings', sa.Integer(), nullable=False),
    sa.Column('late', sa.Integer(), nullable=False),
    sa.Column('heartbeats', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_key.id'], name=op.f('fk_feed_tally_api_key_id_api_key')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_tally')),
    sa.UniqueConstraint('hour', 'api_key_id', 'point_code', name='uq_feed_tally_hour_key_point')
    )
    with op.batch_alter_table('feed_tally', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feed_tally_hour'), ['hour'], unique=False)

    op.create_table('maintenance_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('point_id', sa.Integer(), nullable=True),
    sa.Column('system', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('performed_by', sa.String(length=120), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('work', sa.Text(), nullable=False),
    sa.Column('result', sa.Text(), nullable=False),
    sa.Column('silence_id', sa.Integer(), nullable=True),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['point_id'], ['monitoring_point.id'], name=op.f('fk_maintenance_record_point_id_monitoring_point')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['user_account.id'], name=op.f('fk_maintenance_record_recorded_by_id_user_account')),
    sa.ForeignKeyConstraint(['silence_id'], ['silence.id'], name=op.f('fk_maintenance_record_silence_id_silence')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_record'))
    )
    with op.batch_alter_table('maintenance_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_maintenance_record_point_id'), ['point_id'], unique=False)

    op.create_table('feed_outage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('point_id', sa.Integer(), nullable=True),
    sa.Column('api_key_id', sa.Integer(), nullable=True),
    sa.Column('silent_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_key.id'], name=op.f('fk_feed_outage_api_key_id_api_key')),
    sa.ForeignKeyConstraint(['case_id'], ['warning_case.id'], name=op.f('fk_feed_outage_case_id_warning_case')),
    sa.ForeignKeyConstraint(['point_id'], ['monitoring_point.id'], name=op.f('fk_feed_outage_point_id_monitoring_point')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_outage'))
    )
    with op.batch_alter_table('feed_outage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feed_outage_api_key_id'), ['api_key_id'], unique=False)
        batch_op.create_index('ix_feed_outage_open', ['ended_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_feed_outage_point_id'), ['point_id'], unique=False)

    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('node_codes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('monitoring_point', schema=None) as batch_op:
        batch_op.add_column(sa.Column('datum', sa.String(length=10), server_default='gcj02', nullable=False))
        batch_op.add_column(sa.Column('address', sa.String(length=300), server_default='', nullable=False))
        batch_op.add_column(sa.Column('source_system', sa.String(length=120), server_default='', nullable=False))
        batch_op.add_column(sa.Column('owner_unit', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('maintenance_unit', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('installed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('report_interval_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_monitoring_point_last_seen_at'), ['last_seen_at'], unique=False)



def downgrade():
    with op.batch_alter_table('monitoring_point', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitoring_point_last_seen_at'))
        batch_op.drop_column('retired_at')
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('report_interval_s')
        batch_op.drop_column('installed_on')
        batch_op.drop_column('maintenance_unit')
        batch_op.drop_column('owner_unit')
        batch_op.drop_column('source_system')
        batch_op.drop_column('address')
        batch_op.drop_column('datum')

    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('node_codes')

    with op.batch_alter_table('feed_outage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_outage_point_id'))
        batch_op.drop_index('ix_feed_outage_open')
        batch_op.drop_index(batch_op.f('ix_feed_outage_api_key_id'))

    op.drop_table('feed_outage')
    with op.batch_alter_table('maintenance_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_maintenance_record_point_id'))

    op.drop_table('maintenance_record')
    with op.batch_alter_table('feed_tally', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_tally_hour'))

    op.drop_table('feed_tally')
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letter_received_at'))

    op.drop_table('dead_letter')
    with op.batch_alter_table('rule_filing', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_filing_node_id'))

    op.drop_table('rule_filing')
    with op.batch_alter_table('coverage_snapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coverage_snapshot_day'))

    op.drop_table('coverage_snapshot')
