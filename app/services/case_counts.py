"""The case list's counts: the total of a search and, for each facet, the count of every value
with all the *other* filters applied. Read from the kept tally (`case_tally`) when it can
answer, else from the cases themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.i18n import _l
from app.models import Case, CaseTally, Department, PlatformNode
from app.services import case_tally
from app.services.case_search import (
    FACETS,
    LEVELS,
    LOOPS,
    SOURCES,
    STATES,
    CaseQuery,
    Scope,
    _industry_node,
    _town_of_nodes,
    conditions,
    not_yet_overdue,
    source_of,
    state_of,
)
from app.services.scenarios import scenario_names


@dataclass(frozen=True)
class FacetValue:
    value: str
    label: str
    count: int
    selected: bool


STATE_LABELS = {"open": _l("Open, not accepted"), "in_progress": _l("In progress"),
                "stuck": _l("Stuck"), "closed": _l("Closed"), "cancelled": _l("Cancelled"),
                "false_alarm": _l("False alarm")}
LEVEL_LABELS = {"red": _l("Red"), "orange": _l("Orange"), "yellow": _l("Yellow"),
                "blue": _l("Blue")}
LOOP_LABELS = {"small": _l("Small loop"), "medium": _l("Medium loop"), "big": _l("Big loop")}
SOURCE_LABELS = {"iot": _l("IoT sensing"), "big_data": _l("Big-data analysis"),
                 "video_ai": _l("Video AI recognition"), "social": _l("Social sensing")}


def _facet_columns() -> dict[str, Any]:
    return {"state": state_of(), "level": Case.level, "scenario": Case.scenario,
            "town": Case.node_id, "department": Case.owner_department_id,
            "loop": Case.loop_level, "source": source_of()}


@dataclass(frozen=True)
class _Counting:
    """Where a search's counts are read: the cases, or the tally of them (`case_tally`)."""

    table: Any
    columns: dict[str, Any]
    weight: Any  # None: each row counts once; else the column holding its count
    where: Callable[[str | None], list[ColumnElement[bool]]]

    def count(self, source: Any = None) -> Any:
        if self.weight is None:
            return func.count()
        return func.sum(self.weight if source is None else source.c[self.weight.key])

    def grouped(self, name: str) -> dict[Any, int]:
        expr = self.columns[name]
        rows = db.session.execute(select(expr, self.count()).select_from(self.table)
                                  .where(*self.where(name)).group_by(expr)).tuples().all()
        return {key: int(n) for key, n in rows if n}

    def total(self) -> int:
        return int(db.session.scalar(select(self.count()).select_from(self.table)
                                     .where(*self.where(None))) or 0)


def _tally_counting(query: CaseQuery, scope: Scope) -> _Counting:
    node = _industry_node(query.industry) if query.industry else None
    return _Counting(CaseTally, case_tally.FACET_COLUMNS, CaseTally.n,
                     lambda without: case_tally.conditions(
                         query, scope, industry_path=node.path if node else None,
                         without=without))


def _case_counting(query: CaseQuery, scope: Scope, now: datetime,
                   *extra: ColumnElement[bool]) -> _Counting:
    return _Counting(Case, _facet_columns(), None,
                     lambda without: [*conditions(query, scope, now=now, without=without),
                                      *extra])


def search_total(query: CaseQuery, scope: Scope, now: datetime) -> int:
    """The number of cases the search finds (no facets): from the tally when it can answer
    alone (overdue needs the cases too)."""
    if case_tally.answers(query, scope) and not query.overdue:
        return _tally_counting(query, scope).total()
    return _case_counting(query, scope, now).total()


def search_counts(query: CaseQuery, scope: Scope, now: datetime, *, tally: bool = True
                  ) -> tuple[dict[str, dict[Any, int]], int]:
    """Counts per value of every facet, and the total of the search itself: from the tally
    when it can answer, else from the cases. Overdue cases are the open cases of the tally
    less the open cases not overdue yet (the recent ones: few), read from the cases."""
    if not (tally and case_tally.answers(query, scope)):
        return _count(_case_counting(query, scope, now), query)
    counts, total = _count(_tally_counting(query, scope), query)
    if not query.overdue:
        return counts, total
    fresh, fresh_total = _count(_case_counting(replace(query, overdue=False), scope, now,
                                               not_yet_overdue(now)), query)
    # The tally knows a case's street or town, the cases their own place.
    towns = _town_of_nodes(set(fresh["town"]))
    fresh["town"] = _summed((towns[k].id if k in towns else k, n)
                            for k, n in fresh["town"].items())
    for name, found in fresh.items():
        for key, n in found.items():
            counts[name][key] = counts[name].get(key, 0) - n
        counts[name] = {k: n for k, n in counts[name].items() if n}
    return counts, total - fresh_total


def _summed(pairs: Iterable[tuple[Any, int]]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for key, n in pairs:
        out[key] = out.get(key, 0) + n
    return out


def _count(counting: _Counting, query: CaseQuery) -> tuple[dict[str, dict[Any, int]], int]:
    """Counts per value of every facet and the total, as `counting` reads them.

    The facets without a filter of their own share the search's WHERE: on PostgreSQL one
    scan with GROUPING SETS counts all of them and the total; a facet whose own filter is
    set is counted by its own query without that filter."""
    columns = counting.columns
    own = {"state": bool(query.states), "level": bool(query.levels),
           "scenario": bool(query.scenarios), "town": bool(query.towns),
           "department": bool(query.department), "loop": bool(query.loop),
           "source": bool(query.source)}
    counts: dict[str, dict[Any, int]] = {}
    shared = [name for name in FACETS if not own[name]]
    total: int | None = None
    if db.session.get_bind().dialect.name == "postgresql" and shared:
        weight = [counting.weight] if counting.weight is not None else []
        inner = (select(*[columns[n].label(n) for n in shared], *weight)
                 .select_from(counting.table).where(*counting.where(None)).subquery())
        flags = [func.grouping(inner.c[n]).label(f"g_{n}") for n in shared]
        sets = [tuple_(inner.c[n]) for n in shared] + [tuple_()]
        rows = db.session.execute(
            select(*[inner.c[n] for n in shared], *flags, counting.count(inner))
            .group_by(func.grouping_sets(*sets))).all()
        counts = {n: {} for n in shared}
        for row in rows:
            values, grouped, n = row[:len(shared)], row[len(shared):-1], int(row[-1] or 0)
            member = [name for name, g in zip(shared, grouped, strict=True) if g == 0]
            if not member:
                total = n
            elif n:
                name = member[0]
                counts[name][values[shared.index(name)]] = n
    else:
        for name in shared:
            counts[name] = counting.grouped(name)
    for name in FACETS:
        if own[name]:
            counts[name] = counting.grouped(name)
    if total is None:
        total = counting.total()
    return counts, total


def facets(query: CaseQuery, scope: Scope, *, now: datetime,
           counted: dict[str, dict[Any, int]] | None = None) -> dict[str, list[FacetValue]]:
    """Counts per value of each facet, with every filter except the facet's own."""
    names = scenario_names()
    counts = counted if counted is not None else search_counts(query, scope, now)[0]
    found: dict[str, list[FacetValue]] = {}
    by_state = counts["state"]
    found["state"] = [FacetValue(s, str(STATE_LABELS[s]), by_state.get(s, 0),
                                 s in query.states) for s in STATES]
    by_level = counts["level"]
    found["level"] = [FacetValue(lv, str(LEVEL_LABELS[lv]), by_level.get(lv, 0),
                                 lv in query.levels) for lv in LEVELS]
    by_scenario = counts["scenario"]
    found["scenario"] = [FacetValue(code, names.get(code, code), n, code in query.scenarios)
                         for code, n in sorted(by_scenario.items(), key=lambda kv: -kv[1])]
    by_node = counts["town"]
    towns = _town_of_nodes({k for k in by_node if k is not None})
    per_town: dict[str, tuple[PlatformNode, int]] = {}
    for node_id, n in by_node.items():
        town = towns.get(node_id)
        if town is not None:
            seen = per_town.get(town.code, (town, 0))[1]
            per_town[town.code] = (town, seen + n)
    found["town"] = [FacetValue(code, node.name, n, code in query.towns)
                     for code, (node, n) in sorted(per_town.items(), key=lambda kv: kv[1][0].path)]
    by_department = counts["department"]
    departments = {d.id: d for d in db.session.scalars(select(Department).where(
        Department.id.in_([k for k in by_department if k is not None])))}
    found["department"] = [FacetValue(d.code, d.name, by_department[i], d.code == query.department)
                           for i, d in sorted(departments.items(),
                                              key=lambda kv: -by_department[kv[0]])]
    by_loop = counts["loop"]
    found["loop"] = [FacetValue(lp, str(LOOP_LABELS[lp]), by_loop.get(lp, 0), lp == query.loop)
                     for lp in LOOPS]
    by_source = counts["source"]
    found["source"] = [FacetValue(s, str(SOURCE_LABELS[s]), by_source.get(s, 0),
                                  s == query.source) for s in SOURCES]
    return found


