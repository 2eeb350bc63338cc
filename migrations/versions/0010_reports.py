"""reports: the milestones the figures count, and monthly/annual reports

Revision ID: 0010_reports
Revises: 0009_sensing
Create Date: 2026-12-04 10:10:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0010_reports'
down_revision = '0009_sensing'
branch_labels = None
depends_on = None

MILESTONES = ('pushed_at', 'accept_due_at', 'arrived_at', 'arrive_due_at', 'feedback_at',
              'feedback_due_at', 'cancelled_at', 'medium_loop_at', 'big_loop_at')

# Cases that ran before the columns existed: the milestones from their task rows (the accept
# task's creation is the push; a completed step keeps the deadline it had when completed).
BACKFILL = {
    'pushed_at': "SELECT min(t.created_at) FROM case_task t WHERE t.case_id = warning_case.id "
                 "AND t.element_id = 'Activity_accept'",
    'accept_due_at': "SELECT min(t.due_at) FROM case_task t WHERE t.case_id = warning_case.id "
                     "AND t.element_id = 'Activity_accept' AND t.status = 'completed'",
    'arrived_at': "SELECT min(t.completed_at) FROM case_task t WHERE t.case_id = warning_case.id "
                  "AND t.element_id = 'Activity_dispose' AND t.status = 'completed'",
    'arrive_due_at': "SELECT min(t.due_at) FROM case_task t WHERE t.case_id = warning_case.id "
                     "AND t.element_id = 'Activity_dispose' AND t.status = 'completed'",
    'feedback_at': "SELECT min(t.completed_at) FROM case_task t "
                   "WHERE t.case_id = warning_case.id AND t.element_id = 'Activity_feedback' "
                   "AND t.status = 'completed'",
    'feedback_due_at': "SELECT min(t.due_at) FROM case_task t "
                       "WHERE t.case_id = warning_case.id AND t.element_id = 'Activity_feedback' "
                       "AND t.status = 'completed'",
    'cancelled_at': "SELECT min(t.completed_at) FROM case_task t "
                    "WHERE t.case_id = warning_case.id "
                    "AND t.element_id = 'Activity_cancel_warning' AND t.status = 'completed'",
    'medium_loop_at': "SELECT min(t.created_at) FROM case_task t "
                      "WHERE t.case_id = warning_case.id AND t.element_id = 'Activity_medium_loop'",
    'big_loop_at': "SELECT min(t.created_at) FROM case_task t WHERE t.case_id = warning_case.id "
                   "AND t.process_id = 'big_loop'",
}


def upgrade():
    with op.batch_alter_table('warning_case', schema=None) as batch_op:
        for name in MILESTONES:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_warning_case_opened_at'), ['opened_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_warning_case_closed_at'), ['closed_at'],
                              unique=False)
    for name, query in BACKFILL.items():
        op.execute(f"UPDATE warning_case SET {name} = ({query})")
    op.execute("UPDATE warning_case SET loop_level = 'medium' "
               "WHERE medium_loop_at IS NOT NULL AND loop_level = 'small'")
    op.execute("UPDATE warning_case SET loop_level = 'big' WHERE big_loop_at IS NOT NULL")

    op.create_table(
        'report',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('node_id', sa.Integer(), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('period_end', sa.Date(), nullable=False),
        sa.Column('doc_no', sa.String(length=60), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('narrative', sa.JSON(), nullable=False),
        sa.Column('generated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('written_by_id', sa.Integer(), nullable=True),
        sa.Column('written_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reviewed_by_id', sa.Integer(), nullable=True),
        sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('review_comment', sa.Text(), nullable=True),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('snapshot', sa.JSON(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['node_id'], ['platform_node.id'],
                                name=op.f('fk_report_node_id_platform_node')),
        sa.ForeignKeyConstraint(['written_by_id'], ['user_account.id'],
                                name=op.f('fk_report_written_by_id_user_account')),
        sa.ForeignKeyConstraint(['reviewed_by_id'], ['user_account.id'],
                                name=op.f('fk_report_reviewed_by_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_report')),
        sa.UniqueConstraint('kind', 'node_id', 'period_start', name='uq_report_period'),
        sa.UniqueConstraint('doc_no', name=op.f('uq_report_doc_no')),
    )
    with op.batch_alter_table('report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_node_id'), ['node_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_status'), ['status'], unique=False)
    # An issued report is immutable: the database refuses to change or remove it.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION report_issued_immutable() RETURNS trigger AS $$
            BEGIN
                IF OLD.status = 'issued' THEN
                    RAISE EXCEPTION 'report % is issued and cannot change', OLD.doc_no;
                END IF;
                IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        op.execute("CREATE TRIGGER report_issued_immutable BEFORE UPDATE OR DELETE ON report "
                   "FOR EACH ROW EXECUTE FUNCTION report_issued_immutable()")
    else:
        op.execute("""
            CREATE TRIGGER report_issued_no_update BEFORE UPDATE ON report
            WHEN OLD.status = 'issued'
            BEGIN SELECT RAISE(ABORT, 'report is issued and cannot change'); END""")
        op.execute("""
            CREATE TRIGGER report_issued_no_delete BEFORE DELETE ON report
            WHEN OLD.status = 'issued'
            BEGIN SELECT RAISE(ABORT, 'report is issued and cannot change'); END""")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS report_issued_immutable ON report")
        op.execute("DROP FUNCTION IF EXISTS report_issued_immutable()")
    op.drop_table('report')
    with op.batch_alter_table('warning_case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_warning_case_closed_at'))
        batch_op.drop_index(batch_op.f('ix_warning_case_opened_at'))
        for name in reversed(MILESTONES):
            batch_op.drop_column(name)
