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
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session, aliased

from app import extensions
from app.i18n import _l
from app.models import Alert, Case, DataQualityIssue, Department, NodeKind, PlatformNode
from app.models.base import UTCDateTime
from app.services.errors import ValidationFailed
from app.services.publications import KEY as PUBLICATION_KEY
from app.timezone import local_zone

# Shanghai keeps no daylight saving: local calendar buckets are UTC shifted by eight hours.
LOCAL_OFFSET_HOURS = 8
# Sort memory for the percentile statement on PostgreSQL.
SORT_MEMORY = "64MB"


def reports_session() -> Session:
    """The one session every figure is read through: the reports replica when
    `REPORTS_DATABASE_URL` is set, else the primary's session."""
    return extensions.reports_session()


# ---------------------------------------------------------------------------------------------
# Periods and scopes


@dataclass(frozen=True)
class Period:
    """A month, a year or a range of local days; `end` is the first day after it."""

    kind: str  # month / year / range
    start: date
    end: date

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        end = date(year + (month == 12), month % 12 + 1, 1)
        return cls("month", date(year, month, 1), end)

    @classmethod
    def year(cls, year: int) -> Period:
        return cls("year", date(year, 1, 1), date(year + 1, 1, 1))

    @classmethod
    def parse(cls, text: str | None, *, now: datetime) -> Period:
        """"2026-07" (a month), "2026" (a year), or nothing: the current local month."""
        raw = (text or "").strip()
        try:
            if not raw:
                today = now.astimezone(local_zone()).date()
                return cls.month(today.year, today.month)
            if len(raw) == 4 and raw.isdigit():
                year = int(raw)
                if 2000 <= year <= 2100:
                    return cls.year(year)
            elif len(raw) == 7 and raw[4] == "-" and raw[:4].isdigit() and raw[5:].isdigit():
                year, month = int(raw[:4]), int(raw[5:])
                if 2000 <= year <= 2100 and 1 <= month <= 12:
                    return cls.month(year, month)
        except ValueError:
            pass
        message = _l("Give a month as YYYY-MM or a year as YYYY (2000 to 2100).")
        raise ValidationFailed(message, details={"period": [str(message)]})

    @property
    def code(self) -> str:
        if self.kind == "year":
            return f"{self.start.year}"
        if self.kind == "month":
            return f"{self.start.year}-{self.start.month:02d}"
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def label(self) -> str:
        if self.kind == "year":
            return str(_l("%(year)d", year=self.start.year))
        if self.kind == "month":
            return str(_l("%(year)d-%(month)02d", year=self.start.year, month=self.start.month))
        return f"{self.start.isoformat()} – {(self.end - timedelta(days=1)).isoformat()}"

    @property
    def start_utc(self) -> datetime:
        return datetime.combine(self.start, time(), local_zone()).astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return datetime.combine(self.end, time(), local_zone()).astimezone(UTC)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def previous(self) -> Period:
        if self.kind == "month":
            first = self.start - timedelta(days=1)
            return Period.month(first.year, first.month)
        if self.kind == "year":
            return Period.year(self.start.year - 1)
        length = self.end - self.start
        return Period("range", self.start - length, self.start)

    def same_last_year(self) -> Period:
        if self.kind == "month":
            return Period.month(self.start.year - 1, self.start.month)
        if self.kind == "year":
            return Period.year(self.start.year - 1)
        return Period("range", _minus_year(self.start), _minus_year(self.end))


def _minus_year(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


@dataclass(frozen=True)
class Scope:
    """Whose figures: a platform node (district, sub-platform, scenario, Lingang, town,
    village) or an owner department."""

    kind: str  # a NodeKind value, or "department"
    code: str
    name: str
    path: str = ""
    department_id: int | None = None

    @classmethod
    def of_node(cls, node: PlatformNode) -> Scope:
        return cls(node.kind.value, node.code, node.name, node.path)

    @classmethod
    def of_department(cls, department: Department) -> Scope:
        return cls("department", department.code, department.name,
                   department_id=department.id)

    @property
    def scope_paths(self) -> tuple[str, ...]:
        """For the permission check: a node scope lies at its node."""
        return (self.path,) if self.path else ()

    def condition(self) -> ColumnElement[bool]:
        if self.kind == "department":
            return Case.owner_department_id == self.department_id
        if self.kind == NodeKind.DISTRICT.value:
            return true()
        if self.kind in (NodeKind.INDUSTRY.value, NodeKind.SCENARIO.value):
            return Case.scenario_path.startswith(self.path, autoescape=True)
        return Case.scope_path.startswith(self.path, autoescape=True)

    def drill(self) -> dict[str, str]:
        """The case list's filter for this scope (shared query parameters)."""
        if self.kind == "department":
            return {"department": self.code}
        if self.kind == NodeKind.INDUSTRY.value:
            return {"industry": self.code}
        if self.kind == NodeKind.SCENARIO.value:
            return {"scenario": self.code.removeprefix("scenario.")}
        if self.kind in (NodeKind.TOWN.value, NodeKind.VILLAGE.value, NodeKind.LINGANG.value):
            return {"town": self.code}
        return {}


def scope_for(code: str | None) -> Scope:
    """The scope named by a node code or "department:<code>"; the district when empty."""
    session = reports_session()
    raw = (code or "district").strip()
    if raw.startswith("department:"):
        department = session.scalar(select(Department).where(
            Department.code == raw.removeprefix("department:")))
        if department is not None:
            return Scope.of_department(department)
    else:
        node = session.scalar(select(PlatformNode).where(PlatformNode.code == raw))
        if node is not None:
            return Scope.of_node(node)
    message = _l("No such platform, scenario, town or department.")
    raise ValidationFailed(message, details={"scope": [str(message)]})


def scenario_names() -> dict[str, str]:
    """scenario code -> its name in the platform tree."""
    rows = reports_session().execute(select(PlatformNode.code, PlatformNode.name).where(
        PlatformNode.kind == NodeKind.SCENARIO))
    return {code.removeprefix("scenario."): name for code, name in rows}


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


def _dialect() -> str:
    return reports_session().get_bind().dialect.name


def _seconds(later: Any, earlier: Any) -> ColumnElement[Any]:
    if _dialect() == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _at(moment: datetime) -> ColumnElement[Any]:
    return literal(moment, UTCDateTime())


def _in(column: Any, period: Period) -> ColumnElement[bool]:
    # Named parameters, the same in every condition of a statement: a figure query names
    # its period thirty times, and one pair of parameters keeps the statement short.
    return and_(column >= bindparam("period_start", period.start_utc, type_=UTCDateTime()),
                column < bindparam("period_end", period.end_utc, type_=UTCDateTime()))


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    # An aggregate FILTER (SQLite 3.30+, PostgreSQL): shorter to send and quicker to run
    # than a sum over CASE.
    return func.count().filter(condition)


def _counts(period: Period, as_of: datetime) -> dict[str, ColumnElement[Any]]:
    pushed = _in(Case.pushed_at, period)
    then = bindparam("as_of", as_of, type_=UTCDateTime())
    not_closed_then = or_(Case.closed_at.is_(None), Case.closed_at > then)
    open_then = and_(Case.opened_at < then, not_closed_then)
    closed = and_(Case.status == "closed", _in(Case.closed_at, period))
    return {
        "opened": _count(_in(Case.opened_at, period)),
        "pushed": _count(pushed),
        "accepted": _count(and_(pushed, Case.accepted_at.is_not(None))),
        "accepted_on_time": _count(and_(pushed, Case.accepted_at <= Case.accept_due_at)),
        "arrived": _count(_in(Case.arrived_at, period)),
        "arrived_on_time": _count(and_(_in(Case.arrived_at, period),
                                       Case.arrived_at <= Case.arrive_due_at)),
        "feedback": _count(_in(Case.feedback_at, period)),
        "feedback_on_time": _count(and_(_in(Case.feedback_at, period),
                                        Case.feedback_at <= Case.feedback_due_at)),
        "due": _count(and_(_in(Case.due_at, period), Case.status != "false_alarm")),
        "closed_on_time": _count(and_(_in(Case.due_at, period), Case.status == "closed",
                                      Case.closed_at <= Case.due_at)),
        "closed_of_pushed": _count(and_(pushed, Case.status == "closed")),
        "closed": _count(closed),
        "cancelled": _count(_in(Case.cancelled_at, period)),
        "false_alarms": _count(and_(Case.status == "false_alarm", _in(Case.closed_at, period))),
        "false_alarms_of_opened": _count(and_(Case.status == "false_alarm",
                                              _in(Case.opened_at, period))),
        "medium_loops": _count(_in(Case.medium_loop_at, period)),
        "big_loops": _count(_in(Case.big_loop_at, period)),
        "open_at_end": _count(open_then),
        "overdue": _count(and_(open_then, Case.due_at < then)),
        "stuck": _count(and_(Case.stuck_since.is_not(None), _in(Case.opened_at, period))),
        "accept_sum": func.sum(_seconds(Case.accepted_at, Case.opened_at))
                          .filter(_in(Case.accepted_at, period)),
        "accept_n": _count(_in(Case.accepted_at, period)),
        "close_sum": func.sum(_seconds(Case.closed_at, Case.opened_at)).filter(closed),
        "close_n": _count(closed),
    }


def _durations(period: Period) -> dict[str, ColumnElement[Any]]:
    closed = and_(Case.status == "closed", _in(Case.closed_at, period))
    return {
        "accept": case((_in(Case.accepted_at, period),
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
    if _dialect() == "postgresql":
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


def _local_bucket(column: Any, unit: str) -> ColumnElement[Any]:
    """The local day or month of a moment: a timestamp truncated on PostgreSQL (cheaper than
    formatting every row), text on SQLite; `_bucket_text` gives both as text."""
    if _dialect() == "postgresql":
        return func.date_trunc(unit, func.timezone(local_zone().key, column))
    fmt = "%Y-%m" if unit == "month" else "%Y-%m-%d"
    return func.strftime(fmt, column, f"+{LOCAL_OFFSET_HOURS} hours")


def _bucket_text(bucket: Any, unit: str) -> str:
    if isinstance(bucket, datetime):
        return bucket.strftime("%Y-%m" if unit == "month" else "%Y-%m-%d")
    return str(bucket)


def trend(scope: Scope, period: Period) -> list[dict[str, Any]]:
    """Cases opened, closed and false alarms per local day (a month) or month (a year), from
    one aggregate over the cases opened or closed in the period, grouped by both buckets."""
    unit = "day" if period.kind == "month" else "month"
    series: dict[str, dict[str, Any]] = {}

    def add(bucket: Any, counts: dict[str, Any]) -> None:
        key = _bucket_text(bucket, unit)
        entry = series.setdefault(key, {"bucket": key, "opened": 0, "closed": 0,
                                        "false_alarms": 0})
        for name, n in counts.items():
            entry[name] += int(n or 0)

    opened, closed = _local_bucket(Case.opened_at, unit), _local_bucket(Case.closed_at, unit)
    opened_in, closed_in = _in(Case.opened_at, period), _in(Case.closed_at, period)
    query = (select(opened, closed, _count(opened_in), _count(closed_in),
                    _count(and_(closed_in, Case.status == "closed")),
                    _count(and_(closed_in, Case.status == "false_alarm")))
             .where(or_(opened_in, closed_in), scope.condition(), counted())
             .group_by(opened, closed))
    for b_opened, b_closed, n_opened, n_ended, n_closed, n_false in \
            reports_session().execute(query):
        if n_opened:
            add(b_opened, {"opened": n_opened})
        if n_ended:
            add(b_closed, {"closed": n_closed, "false_alarms": n_false})
    return [series[b] for b in sorted(series)]


def levels(scope: Scope, period: Period) -> dict[str, int]:
    """Cases opened in the period by their highest level."""
    query = (select(Case.highest_level, func.count()).where(
        _in(Case.opened_at, period), scope.condition(), counted())
        .group_by(Case.highest_level))
    return {lv: int(n) for lv, n in reports_session().execute(query)}


def _alert_scope(scope: Scope) -> tuple[ColumnElement[bool], bool]:
    """Alerts reach a scope through their case; a scenario line also through the alert's own
    scenario (alerts that opened nothing: silenced, below threshold). Also says whether the
    case must be joined for it."""
    if scope.kind == NodeKind.DISTRICT.value:
        return true(), False
    if scope.kind in (NodeKind.INDUSTRY.value, NodeKind.SCENARIO.value):
        codes = [c.removeprefix("scenario.") for c in reports_session().scalars(
            select(PlatformNode.code).where(PlatformNode.kind == NodeKind.SCENARIO,
                                            PlatformNode.path.startswith(scope.path,
                                                                         autoescape=True)))]
        return Alert.scenario.in_(codes), False
    return scope.condition(), True


ALERT_DIMENSIONS = ("source", "scenario", "level")


def alerts(scope: Scope, period: Period) -> dict[str, dict[str, int]]:
    """Alerts received in the period by source type, by scenario and by level, in one
    aggregate; alerts of test runs are left out (their cases are few: a hashed anti-join)."""
    level = func.coalesce(Alert.level, "none")
    condition, join_case = _alert_scope(scope)
    uncounted = select(Case.id).where(~counted()).scalar_subquery()
    query = (select(Alert.source_type, Alert.scenario, level, func.count())
             .select_from(Alert)
             .where(_in(Alert.received_at, period), condition,
                    or_(Alert.case_id.is_(None), Alert.case_id.not_in(uncounted)))
             .group_by(Alert.source_type, Alert.scenario, level))
    if join_case:
        query = query.join(Case, Case.id == Alert.case_id)
    found: dict[str, dict[str, int]] = {d: {} for d in ALERT_DIMENSIONS}
    for source, scenario, lv, n in reports_session().execute(query):
        for dimension, key in zip(ALERT_DIMENSIONS, (source, scenario, lv), strict=True):
            found[dimension][str(key)] = found[dimension].get(str(key), 0) + int(n)
    return found


def quality(scope: Scope, period: Period) -> dict[str, int]:
    """Data-quality issues found in the period, and corrections made in it (Art 9)."""
    session = reports_session()
    base = (select(func.count()).select_from(DataQualityIssue)
            .join(Case, Case.id == DataQualityIssue.case_id)
            .where(scope.condition(), counted()))
    found = session.scalar(base.where(_in(DataQualityIssue.detected_at, period))) or 0
    corrected = session.scalar(base.where(_in(DataQualityIssue.resolved_at, period))) or 0
    return {"issues": int(found), "corrected": int(corrected)}


def overdue_cases(scope: Scope, period: Period, *, now: datetime, limit: int = 100
                  ) -> list[dict[str, Any]]:
    """The cases open past their closing deadline at the end of the period (or now), most
    overdue first: the monthly report lists them (Art 9)."""
    as_of = _at(min(period.end_utc, now))
    node = aliased(PlatformNode)
    query = (select(Case.case_no, Case.scenario, Case.item_name, Case.level, Case.due_at,
                    node.name)
             .join(node, node.id == Case.node_id)
             .where(counted(), scope.condition(), Case.opened_at < as_of,
                    or_(Case.closed_at.is_(None), Case.closed_at > as_of), Case.due_at < as_of)
             .order_by(Case.due_at, Case.case_no).limit(limit))
    return [{"case_no": no, "scenario": scenario, "item": item, "level": level,
             "due_at": due.isoformat(),
             "due_local": due.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M"), "place": place}
            for no, scenario, item, level, due, place in reports_session().execute(query)]


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

