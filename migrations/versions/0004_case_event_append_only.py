"""case history is append-only, like the audit trail

Revision ID: 0004_case_event_append_only
Revises: 0003_cases_and_intake
Create Date: 2026-11-24 06:20:00

"""
from alembic import op

revision = '0004_case_event_append_only'
down_revision = '0003_cases_and_intake'
branch_labels = None
depends_on = None

# What happened in a case must not be disputable later: the database refuses to change or
# remove a recorded event (the hash chain shows it if someone gets past this).
_PG = """
CREATE FUNCTION case_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'case_event is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER case_event_no_update BEFORE UPDATE OR DELETE ON case_event
  FOR EACH ROW EXECUTE FUNCTION case_event_append_only();
"""
_SQLITE = (
    """CREATE TRIGGER case_event_no_update BEFORE UPDATE ON case_event
       BEGIN SELECT RAISE(ABORT, 'case_event is append-only'); END""",
    """CREATE TRIGGER case_event_no_delete BEFORE DELETE ON case_event
       BEGIN SELECT RAISE(ABORT, 'case_event is append-only'); END""",
)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG)
    else:
        for statement in _SQLITE:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS case_event_no_update ON case_event")
        op.execute("DROP FUNCTION IF EXISTS case_event_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS case_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS case_event_no_delete")
