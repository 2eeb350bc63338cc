"""Whose figures and when: a report's scope (a platform node or an owner department) and its
period (a local calendar month, year or range of days, in the TIMEZONE setting)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, literal, select, true

from app.extensions import reports_session
from app.i18n import _l
from app.models import Case, Department, NodeKind, PlatformNode
from app.models.base import UTCDateTime
from app.services.errors import ValidationFailed
from app.timezone import local_zone


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
# Building blocks of the figure statements


def dialect() -> str:
    """The database the figures are read from (the reports replica when there is one)."""
    return reports_session().get_bind().dialect.name


def at_instant(moment: datetime) -> ColumnElement[Any]:
    return literal(moment, UTCDateTime())


def in_period(column: Any, period: Period) -> ColumnElement[bool]:
    """`column` lies in the period. Named parameters, the same in every condition of a
    statement: a figure query names its period thirty times, and one pair of parameters keeps
    the statement short."""
    return and_(column >= bindparam("period_start", period.start_utc, type_=UTCDateTime()),
                column < bindparam("period_end", period.end_utc, type_=UTCDateTime()))


def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    """An aggregate FILTER (SQLite 3.30+, PostgreSQL): shorter to send and quicker to run
    than a sum over CASE."""
    return func.count().filter(condition)
