"""The figures of Art 11, 16 and 17 in one module: what happened to the warnings of a scope
(district, sub-platform, scenario, department, town) in a period of local time (TIMEZONE).

Every figure is an SQL aggregate over the case table (one scan per grouping, whatever the
number of cases) using the milestones each step stamps on its case, with the deadline that was
in force when the step was done. Test runs of draft handbooks (`Case.is_test`) never count.
The definitions (DOMAIN.md §8, inferred where the regulation is silent):

- pushed: the accept task was created (the warning was confirmed and sent to the responder);
- acceptance rate: accepted ÷ pushed; acceptance timeliness: accepted by the deadline ÷ pushed;
- arrival / feedback on time: done by the deadline ÷ done, for steps done in the period;
- on-time closure: closed by the closing deadline ÷ due in the period (false alarms aside);
- closure rate: closed with verified feedback ÷ pushed;
- false-alarm rate: false alarms and device faults ÷ opened;
- overdue: open past the closing deadline at the end of the period (or now), count and share
  of the cases open then;
- time to accept / to close: from the push (the case's opening, from which every limit
  counts) to the acceptance / closure, mean, p50 and p90 (nearest rank).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    func,
    null,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session, aliased

from app import extensions
from app.i18n import _l
from app.models import Case, Department, NodeKind, PlatformNode
from app.models.base import UTCDateTime
from app.services.errors import ValidationFailed
from app.services.figure_scope import Period as Period
from app.services.figure_scope import Scope as Scope
from app.services.figure_scope import count_if, dialect, in_period
from app.services.figure_scope import scenario_names as scenario_names
from app.services.figure_scope import scope_for as scope_for
from app.services.publications import KEY as PUBLICATION_KEY

# Sort memory for the percentile statement on PostgreSQL.
SORT_MEMORY = "64MB"


def reports_session() -> Session:
    """The one session every figure is read through: the reports replica when
    `REPORTS_DATABASE_URL` is set, else the primary's session."""
    return extensions.reports_session()


# ---------------------------------------------------------------------------------------------
# What is counted


@dataclass(frozen=True)
class Figure:
    key: str
    label: Any
    kind: str  # count / rate / seconds
    # The case list's filter for the cases behind the figure (besides scope and period).
    drill: dict[str, str] = field(default_factory=dict)
    # Which date the period applies to in the case list: opened or closed.
    anchor: str = "opened"


FIGURES: tuple[Figure, ...] = (
    Figure("opened", _l("Cases opened"), "count"),
    Figure("pushed", _l("Warnings pushed"), "count"),
    Figure("accepted", _l("Warnings accepted"), "count"),
    Figure("acceptance_rate", _l("Acceptance rate"), "rate"),
    Figure("accept_on_time_rate", _l("Accepted on time"), "rate"),
    Figure("arrive_on_time_rate", _l("Arrived on time"), "rate"),
    Figure("feedback_on_time_rate", _l("Feedback on time"), "rate"),
    Figure("close_on_time_rate", _l("Closed on time"), "rate"),
    Figure("closure_rate", _l("Closed-loop rate"), "rate"),
    Figure("closed", _l("Cases closed"), "count", {"state": "closed"}, "closed"),
    Figure("cancelled", _l("Warnings cancelled"), "count", {"state": "cancelled"}),
    Figure("false_alarms", _l("False alarms and device faults"), "count",
           {"state": "false_alarm"}, "closed"),
    Figure("false_alarm_rate", _l("False-alarm rate"), "rate", {"state": "false_alarm"}),
    Figure("medium_loops", _l("Escalated to the medium loop"), "count", {"loop": "medium"}),
    Figure("big_loops", _l("Escalated to the big loop"), "count", {"loop": "big"}),
    Figure("overdue", _l("Overdue, not closed"), "count", {"overdue": "1"}, "none"),
    Figure("overdue_share", _l("Share overdue of open cases"), "rate", {"overdue": "1"}, "none"),
    Figure("stuck", _l("Stuck cases"), "count", {"state": "stuck"}),
    Figure("accept_mean", _l("Time to accept, mean"), "seconds"),
    Figure("accept_p50", _l("Time to accept, p50"), "seconds"),
    Figure("accept_p90", _l("Time to accept, p90"), "seconds"),
    Figure("close_mean", _l("Time to close, mean"), "seconds", {"state": "closed"}, "closed"),
    Figure("close_p50", _l("Time to close, p50"), "seconds", {"state": "closed"}, "closed"),
    Figure("close_p90", _l("Time to close, p90"), "seconds", {"state": "closed"}, "closed"),
)
FIGURES_BY_KEY = {f.key: f for f in FIGURES}

# rate -> (numerator, denominator) among the counts
RATES = {
    "acceptance_rate": ("accepted", "pushed"),
    "accept_on_time_rate": ("accepted_on_time", "pushed"),
    "arrive_on_time_rate": ("arrived_on_time", "arrived"),
    "feedback_on_time_rate": ("feedback_on_time", "feedback"),
    "close_on_time_rate": ("closed_on_time", "due"),
    "closure_rate": ("closed_of_pushed", "pushed"),
    "false_alarm_rate": ("false_alarms_of_opened", "opened"),
    "overdue_share": ("overdue", "open_at_end"),
}

GROUPING_LABELS = {"industry": _l("Sub-platform"), "scenario": _l("Scenario"),
                   "department": _l("Department"), "town": _l("Street or town")}


def counted() -> ColumnElement[bool]:
    """The cases figures count: real warnings. Test runs of drafts never count, and a weather
    warning's publication is a process of the meteorology bureau, not a warning to dispose."""
    return and_(Case.is_test.is_(False), Case.scenario != PUBLICATION_KEY)


def _seconds(later: Any, earlier: Any) -> ColumnElement[Any]:
    if dialect() == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _counts(period: Period, as_of: datetime) -> dict[str, ColumnElement[Any]]:
    pushed = in_period(Case.pushed_at, period)
    then = bindparam("as_of", as_of, type_=UTCDateTime())
    not_closed_then = or_(Case.closed_at.is_(None), Case.closed_at > then)
    open_then = and_(Case.opened_at < then, not_closed_then)
    closed = and_(Case.status == "closed", in_period(Case.closed_at, period))
    return {
        "opened": count_if(in_period(Case.opened_at, period)),
        "pushed": count_if(pushed),
        "accepted": count_if(and_(pushed, Case.accepted_at.is_not(None))),
        "accepted_on_time": count_if(and_(pushed, Case.accepted_at <= Case.accept_due_at)),
        "arrived": count_if(in_period(Case.arrived_at, period)),
        "arrived_on_time": count_if(and_(in_period(Case.arrived_at, period),
                                         Case.arrived_at <= Case.arrive_due_at)),
        "feedback": count_if(in_period(Case.feedback_at, period)),
        "feedback_on_time": count_if(and_(in_period(Case.feedback_at, period),
                                          Case.feedback_at <= Case.feedback_due_at)),
        "due": count_if(and_(in_period(Case.due_at, period), Case.status != "false_alarm")),
        "closed_on_time": count_if(and_(in_period(Case.due_at, period), Case.status == "closed",
                                        Case.closed_at <= Case.due_at)),
        "closed_of_pushed": count_if(and_(pushed, Case.status == "closed")),
        "closed": count_if(closed),
        "cancelled": count_if(in_period(Case.cancelled_at, period)),
        "false_alarms": count_if(and_(Case.status == "false_alarm",
                                      in_period(Case.closed_at, period))),
        "false_alarms_of_opened": count_if(and_(Case.status == "false_alarm",
                                                in_period(Case.opened_at, period))),
        "medium_loops": count_if(in_period(Case.medium_loop_at, period)),
        "big_loops": count_if(in_period(Case.big_loop_at, period)),
        "open_at_end": count_if(open_then),
        "overdue": count_if(and_(open_then, Case.due_at < then)),
        "stuck": count_if(and_(Case.stuck_since.is_not(None), in_period(Case.opened_at, period))),
        "accept_sum": func.sum(_seconds(Case.accepted_at, Case.opened_at))
                          .filter(in_period(Case.accepted_at, period)),
        "accept_n": count_if(in_period(Case.accepted_at, period)),
        "close_sum": func.sum(_seconds(Case.closed_at, Case.opened_at)).filter(closed),
        "close_n": count_if(closed),
    }


def _durations(period: Period) -> dict[str, ColumnElement[Any]]:
    closed = and_(Case.status == "closed", in_period(Case.closed_at, period))
    return {
        "accept": case((in_period(Case.accepted_at, period),
                        _seconds(Case.accepted_at, Case.opened_at)), else_=null()),
        "close": case((closed, _seconds(Case.closed_at, Case.opened_at)), else_=null()),
    }


def _relevant(period: Period) -> ColumnElement[bool]:
    """Cases that may count in the period: opened in it, still open or closed after its
    start, or due in it (every milestone lies between the opening and the closure). Each
    branch of the OR has its own index, so PostgreSQL reads only these rows."""
    start = bindparam("period_start", period.start_utc, type_=UTCDateTime())
    end = bindparam("period_end", period.end_utc, type_=UTCDateTime())
    return and_(Case.opened_at < end,
                or_(and_(Case.opened_at >= start, Case.opened_at < end),
                    Case.closed_at.is_(None), Case.closed_at >= start,
                    and_(Case.due_at >= start, Case.due_at < end)),
                counted())


# ---------------------------------------------------------------------------------------------
# Grouping keys


def _industry_of_scenario() -> dict[str, str]:
    """scenario code -> sub-platform code (scenarios run by the district itself have none)."""
    parent = aliased(PlatformNode)
    rows = reports_session().execute(
        select(PlatformNode.code, parent.code).join(parent, parent.id == PlatformNode.parent_id)
        .where(PlatformNode.kind == NodeKind.SCENARIO, parent.kind == NodeKind.INDUSTRY))
    return {scenario.removeprefix("scenario."): industry for scenario, industry in rows}


@dataclass(frozen=True)
class Group:
    key: Any
    code: str
    name: str
    drill: dict[str, str]


def _groups(by: str, keys: Iterable[Any]) -> dict[Any, Group]:
    session = reports_session()
    wanted = [k for k in keys if k is not None]
    found: dict[Any, Group] = {}
    if by == "scenario":
        nodes = session.scalars(select(PlatformNode).where(
            PlatformNode.code.in_([f"scenario.{k}" for k in wanted])))
        for n in nodes:
            code = n.code.removeprefix("scenario.")
            found[code] = Group(code, code, n.name, {"scenario": code})
    elif by == "department":
        for d in session.scalars(select(Department).where(Department.id.in_(wanted))):
            found[d.id] = Group(d.id, d.code, d.name, {"department": d.code})
    elif by == "industry":
        for n in session.scalars(select(PlatformNode).where(PlatformNode.code.in_(wanted))):
            found[n.code] = Group(n.code, n.code, n.name, {"industry": n.code})
    elif by == "level":
        for level in wanted:
            found[level] = Group(level, level, level, {"level": level})
    else:
        for n in session.scalars(select(PlatformNode).where(PlatformNode.id.in_(wanted))):
            found[n.id] = Group(n.id, n.code, n.name, {"town": n.code})
    for key in wanted:
        found.setdefault(key, Group(key, str(key), str(key), {}))
    return found


# ---------------------------------------------------------------------------------------------
# Computing


def _derive(raw: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {k: int(v or 0) for k, v in raw.items()
                              if not k.endswith(("_sum", "_p50", "_p90"))}
    for rate, (num, den) in RATES.items():
        values[rate] = (values[num] / values[den]) if values[den] else None
    for name in ("accept", "close"):
        n = values.pop(f"{name}_n")
        total = raw.get(f"{name}_sum")
        values[f"{name}_mean"] = (float(total) / n) if n and total is not None else None
        for p in ("p50", "p90"):
            found = raw.get(f"{name}_{p}")
            values[f"{name}_{p}"] = float(found) if found is not None else None
    return values


def _totals_raw(scope: Scope, period: Period, *, now: datetime) -> dict[str, Any] | None:
    """Raw counts, sums and percentiles of the scope's cases over the period."""
    session = reports_session()
    as_of = min(period.end_utc, now)
    columns = [expr.label(name) for name, expr in _counts(period, as_of).items()]
    query: Select[Any] = select(*columns).select_from(Case).where(
        _relevant(period), scope.condition())
    row = session.execute(query).mappings().first()
    if row is None or row["opened"] is None:
        return None
    result = dict(row)
    _add_percentiles(result, scope, period)
    return result


def _add_percentiles(result: dict[str, Any], scope: Scope, period: Period) -> None:
    if dialect() == "postgresql":
        _percentiles_by_sort(result, scope, period)
    else:
        _percentiles_by_window(result, scope, period)


def _percentiles_by_sort(result: dict[str, Any], scope: Scope, period: Period) -> None:
    """p50 and p90 of both durations in one statement, one sort per duration (an ordered-set
    aggregate keeps the counts from running in parallel, so it has its own statement)."""
    durations = _durations(period)
    session = reports_session()
    # A year's durations (a million values, two sorts) sort in memory rather than on disk;
    # for this transaction only.
    session.execute(text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))
    row = session.execute(
        select(*[func.percentile_disc(array([0.5, 0.9])).within_group(expr)
                 for expr in durations.values()])
        .select_from(Case).where(_relevant(period), scope.condition(),
                                 or_(*[expr.is_not(None) for expr in durations.values()]))
    ).one()
    for name, found in zip(durations, row, strict=True):
        p50, p90 = found if found else (None, None)
        result[f"{name}_p50"], result[f"{name}_p90"] = p50, p90


def _percentiles_by_window(result: dict[str, Any], scope: Scope, period: Period) -> None:
    """Nearest-rank p50/p90 where the database has no percentile aggregate (SQLite): rank the
    values with a window function and keep the ranks wanted."""
    session = reports_session()
    for name, expr in _durations(period).items():
        values = select(expr.label("value")).select_from(Case).where(
            _relevant(period), scope.condition(), expr.is_not(None)).subquery()
        ranked = select(
            values.c.value,
            func.row_number().over(order_by=values.c.value).label("rn"),
            func.count().over().label("n")).subquery()
        for p in (50, 90):
            # ceil(p% of n) in integers: the nearest rank, as percentile_disc answers.
            wanted = (ranked.c.n * p + 99) // 100
            result[f"{name}_p{p}"] = session.scalar(
                select(ranked.c.value).where(ranked.c.rn == wanted))


# What a report's cases are grouped by in SQL: (scenario, owner department, highest level),
# and platform node. Every breakdown is a sum of one of these groupings, made in Python (counts
# and sums add up), and the totals are the sum of the first: two plain aggregates over the
# period's cases, with no join, stand for every grouping and the totals (plain GROUP BY, which
# PostgreSQL runs in parallel, where GROUPING SETS would not).
_FINE_SETS = {"main": (Case.scenario, Case.owner_department_id, Case.highest_level),
              "node": (Case.node_id,)}
_KEYS = 3  # fine rows: three keys (padded with None), then the counts


def _fine_rows(scope: Scope, period: Period, bys: tuple[str, ...], *, now: datetime
               ) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    """The names of the raw counts and sums, and for each fine grouping its rows: the keys
    then the counts. The node grouping only when a breakdown by town needs it."""
    session = reports_session()
    counts = _counts(period, min(period.end_utc, now))
    base = select(*counts.values()).select_from(Case).where(_relevant(period),
                                                            scope.condition())
    width = len(counts)
    found: dict[str, list[tuple[Any, ...]]] = {name: [] for name in _FINE_SETS}
    for name, keys in _FINE_SETS.items():
        if name == "node" and "town" not in bys:
            continue
        for row in session.execute(base.add_columns(*keys).group_by(*keys)):
            found[name].append((*row[width:], *[None] * (_KEYS - len(keys)), *row[:width]))
    return list(counts), found


def _town_of_node() -> dict[int, int]:
    """platform node id -> the town (street) it lies in, for towns and villages."""
    found: dict[int, int] = {}
    for node_id, kind, parent_id in reports_session().execute(
            select(PlatformNode.id, PlatformNode.kind, PlatformNode.parent_id).where(
                PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.VILLAGE)))):
        if kind == NodeKind.TOWN:
            found[node_id] = node_id
        elif parent_id is not None:
            found[node_id] = parent_id
    return found


def _add_up(names: list[str], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    return {name: sum(r[_KEYS + n] or 0 for r in rows) for n, name in enumerate(names)}


def _rolled_up(names: list[str], rows: dict[str, list[tuple[Any, ...]]],
               bys: tuple[str, ...]) -> dict[str, dict[Any, dict[str, Any]]]:
    """by -> key -> raw counts and sums, each grouping a sum of fine rows."""
    key_of: dict[str, tuple[str, Any]] = {
        "scenario": ("main", lambda r: r[0]), "department": ("main", lambda r: r[1]),
        "level": ("main", lambda r: r[2])}
    if "industry" in bys:
        industry = _industry_of_scenario()
        key_of["industry"] = ("main", lambda r: industry.get(r[0]))
    if "town" in bys:
        town = _town_of_node()
        key_of["town"] = ("node", lambda r: town.get(r[0]))
    found: dict[str, dict[Any, dict[str, Any]]] = {}
    for by in bys:
        if by not in key_of:
            message = _l("Unknown grouping.")
            raise ValidationFailed(message, details={"by": [str(message)]})
        fine, key = key_of[by]
        parts: dict[Any, list[tuple[Any, ...]]] = {}
        for r in rows[fine]:
            parts.setdefault(key(r), []).append(r)
        found[by] = {k: _add_up(names, part) for k, part in parts.items()}
    return found


def _grouped_raw(scope: Scope, period: Period, bys: tuple[str, ...], *, now: datetime
                 ) -> dict[str, dict[Any, dict[str, Any]]]:
    """by -> key -> raw counts and sums, every grouping from one aggregate over the cases."""
    names, rows = _fine_rows(scope, period, bys, now=now)
    return _rolled_up(names, rows, bys)


def _empty() -> dict[str, Any]:
    return _derive({name: 0 for name in _counts(Period.year(2000), datetime.now(UTC))})


def totals(scope: Scope, period: Period, *, now: datetime) -> dict[str, Any]:
    """Every figure of the scope over the period."""
    found = _totals_raw(scope, period, now=now)
    return _derive(found) if found else _empty()


@dataclass
class Row:
    group: Group
    values: dict[str, Any]


def breakdowns(scope: Scope, period: Period, bys: tuple[str, ...], *, now: datetime
               ) -> dict[str, list[Row]]:
    """The figures of the scope's cases per sub-platform, scenario, department, town or
    highest level, every grouping from one query. Percentiles are left to the totals."""
    if not bys:
        return {}
    return _rows_of(_grouped_raw(scope, period, bys, now=now))


def _rows_of(grouped: dict[str, dict[Any, dict[str, Any]]]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for by, found in grouped.items():
        groups = _groups(by, found)
        rows = [Row(groups[k], _derive(v)) for k, v in found.items() if k is not None]
        rows.sort(key=lambda r: (-r.values["opened"], r.group.code))
        out[by] = rows
    return out


def breakdown(scope: Scope, period: Period, by: str, *, now: datetime) -> list[Row]:
    """The figures of the scope's cases per sub-platform, scenario, department or town."""
    return breakdowns(scope, period, (by,), now=now)[by]


@dataclass
class Comparison:
    current: dict[str, Any]
    previous: dict[str, Any]
    last_year: dict[str, Any]


def compare(scope: Scope, period: Period, *, now: datetime,
            current: dict[str, Any] | None = None) -> Comparison:
    """The period's figures beside the previous period's and those of the same period last
    year (`current` when already computed). A year's previous period is last year: counted
    once."""
    previous = totals(scope, period.previous(), now=now)
    last_year = (dict(previous) if period.same_last_year() == period.previous()
                 else totals(scope, period.same_last_year(), now=now))
    return Comparison(current if current is not None else totals(scope, period, now=now),
                      previous, last_year)


@dataclass
class Summary:
    totals: dict[str, Any]
    breakdowns: dict[str, list[Row]]


def summary(scope: Scope, period: Period, bys: tuple[str, ...], *, now: datetime
            ) -> Summary:
    """The totals of the scope over the period (with percentiles) and its breakdowns, from
    one aggregate over the cases and one for the percentiles."""
    names, rows = _fine_rows(scope, period, bys, now=now)
    raw = _add_up(names, rows["main"])
    _add_percentiles(raw, scope, period)
    return Summary(_derive(raw), _rows_of(_rolled_up(names, rows, bys)))


# ---------------------------------------------------------------------------------------------
# The assessment of Art 17 (weights inferred: kept here as data, shown on the bulletin)

ASSESSMENT_WEIGHTS: tuple[tuple[str, int, bool], ...] = (
    # figure, weight, True when a lower value is better (counted as 1 - value)
    ("accept_on_time_rate", 30, False),
    ("close_on_time_rate", 30, False),
    ("closure_rate", 25, False),
    ("overdue_share", 15, True),
)


def assessment_score(values: dict[str, Any]) -> float | None:
    """0-100: the weighted mean of the assessed rates a unit has (a rate with nothing to
    measure, such as acceptance with no warning pushed, leaves its weight out)."""
    total = weight = 0.0
    for key, w, lower_better in ASSESSMENT_WEIGHTS:
        value = values.get(key)
        if value is None:
            continue
        total += w * ((1 - value) if lower_better else value)
        weight += w
    return round(100 * total / weight, 1) if weight else None


# ---------------------------------------------------------------------------------------------
# Drill-down to the case list


def drill_params(scope: Scope, period: Period, figure: str,
                 group: dict[str, str] | None = None) -> dict[str, str]:
    """The case list's filter for the cases behind one figure of one scope (and group)."""
    meta = FIGURES_BY_KEY.get(figure)
    params = {**scope.drill(), **(group or {})}
    if meta is not None:
        params.update(meta.drill)
        anchor = meta.anchor
    else:
        anchor = "opened"
    if anchor != "none":
        params[f"{anchor}_from"] = period.start.isoformat()
        params[f"{anchor}_to"] = period.last_day.isoformat()
    return params

