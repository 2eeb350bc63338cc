"""The case list's counts kept ready: how many cases have each combination of facet values
(table `case_tally`, migration 0016).

Triggers on the cases write a row of +1 for the key of every new or changed case and -1 for
its old key: inserts only, so writers never wait for one another. `compact` sums the rows of
each key into one; `reconcile` checks the whole table against the cases and puts it right.
A search reads its counts here when it filters on facets alone (state, level, scenario,
sub-platform, street or town, department, loop, source) within a scope of streets and towns
or wider; overdue cases are the open ones counted here less those not overdue yet (recent,
few), counted from the cases. Any other filter (dates, text, evidence...), or a village among
the places, is counted from the cases themselves.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, and_, delete, false, func, insert, select, text
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import Case, CaseTally, Department, NodeKind, PlatformNode
from app.services.scenarios import in_scope

if TYPE_CHECKING:
    from app.services.case_search import CaseQuery, Scope

# The table itself: the tally is written and read as rows, not as objects.
TABLE = cast(Table, CaseTally.__table__)
KEY = ("state", "status", "level", "scenario", "scenario_path", "place_id", "place_path",
       "department_id", "loop_level", "source")
FACET_COLUMNS: dict[str, Any] = {
    "state": CaseTally.state, "level": CaseTally.level, "scenario": CaseTally.scenario,
    "town": CaseTally.place_id, "department": CaseTally.department_id,
    "loop": CaseTally.loop_level, "source": CaseTally.source}

Key = tuple[Any, ...]


def answers(query: CaseQuery, scope: Scope) -> bool:
    """Whether the tally can count this search exactly."""
    if (query.opened_from or query.opened_to or query.closed_from
            or query.closed_to or query.evidence or query.q or query.case_no
            or query.raw_status or query.point_code):
        return False
    paths = [] if scope.everywhere else list(scope.paths)
    if not paths and not query.towns:
        return True
    # The tally knows a case's street or town, not its village.
    villages = db.session.scalar(select(func.count()).select_from(PlatformNode).where(
        PlatformNode.kind == NodeKind.VILLAGE,
        PlatformNode.path.in_(paths) | PlatformNode.code.in_(query.towns)))
    return not villages


def conditions(query: CaseQuery, scope: Scope, *, industry_path: str | None,
               without: str | None = None) -> list[ColumnElement[bool]]:
    """The search's WHERE on the tally (as `case_search.conditions` on the cases);
    `without` leaves one facet's own filter out."""
    t = CaseTally
    where: list[ColumnElement[bool]] = []
    if not scope.everywhere:
        where.append(in_scope(scope.paths, t.place_path, t.scenario_path))
    if query.states and without != "state":
        where.append(t.state.in_(query.states))
    if query.overdue:
        # The open cases: the search subtracts those not overdue (see case_counts).
        where.append(t.status == "open")
    if query.levels and without != "level":
        where.append(t.level.in_(query.levels))
    if query.scenarios and without != "scenario":
        where.append(t.scenario.in_(query.scenarios))
    if query.industry:
        where.append(t.scenario_path.startswith(industry_path, autoescape=True)
                     if industry_path else false())
    if query.towns and without != "town":
        paths = db.session.scalars(select(PlatformNode.path).where(
            PlatformNode.code.in_(query.towns))).all()
        where.append(in_scope(paths, t.place_path))
    if query.department and without != "department":
        where.append(t.department_id == select(Department.id).where(
            Department.code == query.department).scalar_subquery())
    if query.loop and without != "loop":
        where.append(t.loop_level == query.loop)
    if query.source and without != "source":
        where.append(t.source == query.source)
    return where


# ---------------------------------------------------------------- upkeep


def _columns() -> list[Any]:
    return [TABLE.c[name] for name in KEY]


def _store(sums: dict[Key, int]) -> None:
    rows = [dict(zip(KEY, key, strict=True), n=n) for key, n in sums.items() if n]
    if rows:
        db.session.execute(insert(TABLE), rows)


def _take_all() -> dict[Key, int]:
    """Delete every row and answer their sums per key, in one statement (what another
    transaction adds meanwhile stays for the next run)."""
    sums: dict[Key, int] = defaultdict(int)
    for *key, n in db.session.execute(delete(TABLE).returning(
            *_columns(), TABLE.c.n)):
        sums[tuple(key)] += n
    return sums


def compact() -> int:
    """Sum the rows of each key into one, dropping keys that come to nothing; answers the
    number of rows read."""
    sums = _take_all()
    _store(sums)
    return len(sums)


def expected() -> dict[Key, int]:
    """The counts computed from the cases themselves (the definition the triggers keep)."""
    from app.services.case_search import source_of, state_of

    place, town = aliased(PlatformNode), aliased(PlatformNode)
    key = (state_of(), Case.status, Case.level, Case.scenario, Case.scenario_path,
           func.coalesce(town.id, place.id), func.coalesce(town.path, place.path),
           Case.owner_department_id, Case.loop_level, source_of())
    rows = db.session.execute(
        select(*key, func.count()).select_from(Case)
        .join(place, place.id == Case.node_id)
        .outerjoin(town, and_(town.id == place.parent_id, place.kind == NodeKind.VILLAGE))
        .where(Case.is_test.is_(False)).group_by(*key))
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


def reconcile() -> int:
    """Check the tally against the cases and put it right; answers the number of keys that
    were wrong (0 when the triggers kept it, as they should). Writers of cases wait for the
    few seconds this takes on PostgreSQL (the tally is locked); on SQLite the first statement
    takes the database's single write lock."""
    if db.session.get_bind().dialect.name == "postgresql":
        # Not behind a long transaction, with every case write queued behind this: another
        # night, then.
        db.session.execute(text("SET LOCAL lock_timeout = '5s'"))
        db.session.execute(text("LOCK TABLE case_tally IN EXCLUSIVE MODE"))
    have = _take_all()
    want = expected()
    wrong = sum(1 for k in set(have) | set(want) if have.get(k, 0) != want.get(k, 0))
    _store(want)
    return wrong
