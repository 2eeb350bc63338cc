"""case tally: maintained counts of cases per facet value, for the case list's counts

Revision ID: 0016_case_tally
Revises: 0015_designer
Create Date: 2026-12-04 22:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0016_case_tally'
down_revision = '0015_designer'
branch_labels = None
depends_on = None

# The case list counts every value of each facet among the cases a person may see. Over a
# million cases a count read from the cases themselves takes seconds; this table keeps them.
# Triggers add a row of +1 for the key of each new or changed case and -1 for its old key
# (insert only: concurrent writers never wait for each other); a scheduler job sums the rows
# (`case_tally.compact`) and another checks them against the cases (`case_tally.reconcile`).
# The key is the facet values of the case list, the engine status (an overdue case is open),
# the town of its place (a village's street or
# town) and its scenario line; test runs of draft handbooks are never counted.

_COLUMNS = ("state, status, level, scenario, scenario_path, place_id, place_path, department_id, "
            "loop_level, source, n")

# What the case list calls the state of a case (app.services.case_search.state_of).
_STATE = ("CASE WHEN {r}.stuck_since IS NOT NULL OR {r}.status = 'error' THEN 'stuck' "
          "WHEN {r}.status = 'false_alarm' THEN 'false_alarm' "
          "WHEN {r}.outcome = 'cancelled' THEN 'cancelled' "
          "WHEN {r}.status = 'closed' THEN 'closed' "
          "WHEN {r}.accepted_at IS NOT NULL THEN 'in_progress' ELSE 'open' END")
_SOURCE = {"postgresql": "split_part({r}.dedup_key, '|', 1)",
           "sqlite": "substr({r}.dedup_key, 1, instr({r}.dedup_key, '|') - 1)"}
# The columns a key is made of: a change of any other column leaves the counts alone.
_KEYED = ("status", "outcome", "level", "scenario", "scenario_path", "node_id",
          "owner_department_id", "loop_level", "dedup_key", "is_test")


def _row(dialect: str, r: str, n: int) -> str:
    """INSERT the key of row `r` (NEW or OLD) with `n`, unless it is a test case."""
    return (f"INSERT INTO case_tally ({_COLUMNS}) "
            f"SELECT {_STATE.format(r=r)}, {r}.status, {r}.level, {r}.scenario, {r}.scenario_path, "
            f"COALESCE(town.id, place.id), COALESCE(town.path, place.path), "
            f"{r}.owner_department_id, {r}.loop_level, {_SOURCE[dialect].format(r=r)}, {n} "
            f"FROM platform_node place LEFT JOIN platform_node town "
            f"ON town.id = place.parent_id AND place.kind = 'village' "
            f"WHERE place.id = {r}.node_id AND NOT {r}.is_test")


def _changed(dialect: str) -> str:
    differ = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    parts = [f"OLD.{c} {differ} NEW.{c}" for c in _KEYED]
    parts += [f"(OLD.{c} IS NULL) <> (NEW.{c} IS NULL)" for c in ("stuck_since", "accepted_at")]
    return " OR ".join(parts)


def _fill(dialect: str) -> str:
    """The counts of the cases already there."""
    r = "c"
    return (f"INSERT INTO case_tally ({_COLUMNS}) "
            f"SELECT {_STATE.format(r=r)}, c.status, c.level, c.scenario, c.scenario_path, "
            f"COALESCE(town.id, place.id), COALESCE(town.path, place.path), "
            f"c.owner_department_id, c.loop_level, {_SOURCE[dialect].format(r=r)}, count(*) "
            f"FROM warning_case c JOIN platform_node place ON place.id = c.node_id "
            f"LEFT JOIN platform_node town "
            f"ON town.id = place.parent_id AND place.kind = 'village' "
            f"WHERE NOT c.is_test GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10")


def upgrade():
    op.create_table(
        'case_tally',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  primary_key=True, autoincrement=True),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('level', sa.String(length=10), nullable=True),
        sa.Column('scenario', sa.String(length=40), nullable=True),
        sa.Column('scenario_path', sa.String(length=200), nullable=True),
        sa.Column('place_id', sa.Integer(), nullable=True),
        sa.Column('place_path', sa.String(length=200), nullable=True),
        sa.Column('department_id', sa.Integer(), nullable=True),
        sa.Column('loop_level', sa.String(length=10), nullable=True),
        sa.Column('source', sa.String(length=240), nullable=True),
        sa.Column('n', sa.Integer(), nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"""
CREATE FUNCTION case_tally_track() RETURNS trigger AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN {_row(dialect, 'OLD', -1)}; END IF;
  IF TG_OP <> 'DELETE' THEN {_row(dialect, 'NEW', 1)}; END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql""")
        op.execute("CREATE TRIGGER case_tally_insert_delete AFTER INSERT OR DELETE "
                   "ON warning_case FOR EACH ROW EXECUTE FUNCTION case_tally_track()")
        op.execute(f"CREATE TRIGGER case_tally_update AFTER UPDATE ON warning_case "
                   f"FOR EACH ROW WHEN ({_changed(dialect)}) "
                   f"EXECUTE FUNCTION case_tally_track()")
    else:
        op.execute(f"CREATE TRIGGER case_tally_insert AFTER INSERT ON warning_case "
                   f"BEGIN {_row(dialect, 'NEW', 1)}; END")
        op.execute(f"CREATE TRIGGER case_tally_delete AFTER DELETE ON warning_case "
                   f"BEGIN {_row(dialect, 'OLD', -1)}; END")
        op.execute(f"CREATE TRIGGER case_tally_update AFTER UPDATE ON warning_case "
                   f"WHEN {_changed(dialect)} "
                   f"BEGIN {_row(dialect, 'OLD', -1)}; {_row(dialect, 'NEW', 1)}; END")
    op.execute(_fill(dialect))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS case_tally_update ON warning_case")
        op.execute("DROP TRIGGER IF EXISTS case_tally_insert_delete ON warning_case")
        op.execute("DROP FUNCTION IF EXISTS case_tally_track()")
    else:
        for name in ("case_tally_update", "case_tally_insert", "case_tally_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('case_tally')
