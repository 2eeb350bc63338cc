"""Case search: the one scoped query behind the case list page, `GET /api/v1/cases`, the
exports, and the duty board's click-throughs.

Filters follow the case-list contract (state, level, scenario, industry, town, department,
loop, overdue, source, opened/closed date ranges in local dates (TIMEZONE), evidence, text);
facets count every value of a filter with all the *other* filters applied, so a count says
what choosing that value would give (`case_counts`). Test runs of draft handbooks never
appear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.i18n import _l
from app.models import (
    LEVEL_RANK,
    Alert,
    Attachment,
    Case,
    CaseComment,
    CaseTask,
    Department,
    MonitoringPoint,
    NodeKind,
    PlatformNode,
    User,
)
from app.services.errors import Forbidden, ValidationFailed
from app.services.overdue import accept_step
from app.services.permissions import scope_paths
from app.services.scenarios import in_scope, scenario_names
from app.services.text_match import ESCAPE, contains_pattern
from app.timezone import local_zone

if TYPE_CHECKING:
    from app.services.case_counts import FacetValue

STATES = ("open", "in_progress", "stuck", "closed", "cancelled", "false_alarm")
LEVELS = ("red", "orange", "yellow", "blue")
LOOPS = ("small", "medium", "big")
SOURCES = ("iot", "big_data", "video_ai", "social")
# Raw engine statuses, kept for the API's `status` parameter.
RAW_STATUSES = ("open", "closed", "false_alarm", "error")
SORTS = {
    "-opened": (Case.opened_at.desc(), Case.id.desc()),
    "opened": (Case.opened_at.asc(), Case.id.asc()),
    "-level": (case(*[(Case.level == lv, -rank) for lv, rank in LEVEL_RANK.items()],
                    else_=0).asc(), Case.opened_at.desc(), Case.id.desc()),
    "due": (Case.due_at.is_(None), Case.due_at.asc(), Case.id.asc()),
    "-closed": (Case.closed_at.is_(None), Case.closed_at.desc(), Case.id.desc()),
    "case_no": (Case.case_no.asc(),),
}
DEFAULT_SORT = "-opened"
MAX_PER_PAGE = 100
MAX_PAGE = 10_000
MAX_TEXT = 100
FACETS = ("state", "level", "scenario", "town", "department", "loop", "source")


@dataclass(frozen=True)
class CaseQuery:
    """What the person asked for; every field optional. Towns are node codes."""

    states: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    industry: str | None = None
    towns: tuple[str, ...] = ()
    department: str | None = None
    loop: str | None = None
    overdue: bool = False
    source: str | None = None
    opened_from: date | datetime | None = None
    opened_to: date | datetime | None = None
    closed_from: date | datetime | None = None
    closed_to: date | datetime | None = None
    evidence: bool = False
    q: str | None = None
    case_no: str | None = None  # the API's older, narrower text filter
    raw_status: str | None = None  # the API's older `status` (engine status)
    point_code: str | None = None  # a map dot's click-through
    sort: str = DEFAULT_SORT
    page: int = 1
    per_page: int = 25

    def params(self) -> list[tuple[str, str]]:
        """The query as URL parameters of the case-list contract (for links and exports)."""
        out: list[tuple[str, str]] = []
        out += [("state", s) for s in self.states]
        out += [("level", s) for s in self.levels]
        out += [("scenario", s) for s in self.scenarios]
        out += [("town", s) for s in self.towns]
        for key in ("industry", "department", "loop", "source", "q", "case_no", "point_code"):
            value = getattr(self, key)
            if value:
                out.append((key, str(value)))
        if self.raw_status:
            out.append(("status", self.raw_status))
        for key in ("opened_from", "opened_to", "closed_from", "closed_to"):
            value = getattr(self, key)
            if isinstance(value, datetime):
                out.append((key, value.strftime("%Y-%m-%dT%H:%M")))
            elif value:
                out.append((key, value.isoformat()))
        if self.overdue:
            out.append(("overdue", "1"))
        if self.evidence:
            out.append(("evidence", "1"))
        if self.sort != DEFAULT_SORT:
            out.append(("sort", self.sort))
        return out

    @property
    def filtered(self) -> bool:
        return any(k not in ("sort",) for k, _ in self.params())


# URL parameters: repeatable keys (a werkzeug MultiDict, as request.args is).
Args = MultiDict[str, str]


def _choices(args: Args, key: str, allowed: Sequence[str], errors: dict[str, list[str]]
             ) -> tuple[str, ...]:
    values = [v.strip() for v in args.getlist(key) if v.strip()]
    wrong = [v for v in values if v not in allowed]
    if wrong:
        errors[key] = [str(_l("Must be one of: %(choices)s.", choices=", ".join(allowed)))]
    return tuple(dict.fromkeys(v for v in values if v in allowed))


def _one(args: Args, key: str, allowed: Sequence[str] | None, errors: dict[str, list[str]]
         ) -> str | None:
    value = (args.get(key) or "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT or "\x00" in value:
        errors[key] = [str(_l("At most %(n)s characters.", n=MAX_TEXT))]
        return None
    if allowed is not None and value not in allowed:
        errors[key] = [str(_l("Must be one of: %(choices)s.", choices=", ".join(allowed)))]
        return None
    return value


def _date(args: Args, key: str, errors: dict[str, list[str]]) -> date | datetime | None:
    """A day (YYYY-MM-DD), or for the board's "last hour" a local minute (YYYY-MM-DDTHH:MM)."""
    value = (args.get(key) or "").strip()
    if not value:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        if len(value) == 16 and value[10] == "T":
            return datetime.fromisoformat(value).replace(tzinfo=local_zone())
    except ValueError:
        pass
    errors[key] = [str(_l("Enter a date (YYYY-MM-DD)."))]
    return None


def _flag(args: Args, key: str, errors: dict[str, list[str]]) -> bool:
    value = (args.get(key) or "").strip().lower()
    if value in ("", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    errors[key] = [str(_l("Must be one of: %(choices)s.", choices="1, 0"))]
    return False


def _number(args: Args, key: str, default: int, upper: int, errors: dict[str, list[str]]
            ) -> int:
    value = (args.get(key) or "").strip()
    if not value:
        return default
    if not value.isascii() or not value.isdigit() or not 1 <= int(value[:12]) <= upper:
        errors[key] = [str(_l("Between 1 and %(n)d.", n=upper))]
        return default
    return int(value)


def town_codes() -> dict[str, PlatformNode]:
    """Street, town and Lingang nodes by code (villages are reached through their town)."""
    return {n.code: n for n in db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.LINGANG, NodeKind.VILLAGE))))}


def parse_query(args: Args) -> CaseQuery:
    """Read the case-list contract from URL parameters; a wrong value is a ValidationFailed
    naming each parameter (never a silent drop, never a 500)."""
    errors: dict[str, list[str]] = {}
    scenarios = [*scenario_names()]
    towns_given = [v.strip() for v in args.getlist("town") if v.strip()]
    towns: list[str] = []
    if towns_given:
        nodes = {n.code: n for n in db.session.scalars(select(PlatformNode).where(
            PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.LINGANG, NodeKind.VILLAGE)),
            or_(PlatformNode.code.in_(towns_given),
                PlatformNode.id.in_([int(v) for v in towns_given
                                     if v.isascii() and v.isdigit() and len(v) < 10]))))}
        by_id = {str(n.id): code for code, n in nodes.items()}
        for value in towns_given:
            code = value if value in nodes else by_id.get(value)
            if code is None:
                errors["town"] = [str(_l("No such platform node."))]
            else:
                towns.append(code)
    department = _one(args, "department", None, errors)
    if department and db.session.scalar(select(Department.id).where(
            Department.code == department)) is None:
        errors["department"] = [str(_l("No such department."))]
    industry = _one(args, "industry", None, errors)
    if industry and _industry_node(industry) is None:
        errors["industry"] = [str(_l("No such industry sub-platform."))]
    query = CaseQuery(
        states=_choices(args, "state", STATES, errors),
        levels=_choices(args, "level", LEVELS, errors),
        scenarios=_choices(args, "scenario", scenarios, errors),
        industry=industry, towns=tuple(dict.fromkeys(towns)), department=department,
        loop=_one(args, "loop", LOOPS, errors), overdue=_flag(args, "overdue", errors),
        source=_one(args, "source", SOURCES, errors),
        opened_from=_date(args, "opened_from", errors), opened_to=_date(args, "opened_to", errors),
        closed_from=_date(args, "closed_from", errors), closed_to=_date(args, "closed_to", errors),
        evidence=_flag(args, "evidence", errors), q=_one(args, "q", None, errors),
        case_no=_one(args, "case_no", None, errors),
        raw_status=_one(args, "status", RAW_STATUSES, errors),
        point_code=_one(args, "point_code", None, errors),
        sort=_one(args, "sort", tuple(SORTS), errors) or DEFAULT_SORT,
        page=_number(args, "page", 1, MAX_PAGE, errors),
        per_page=_number(args, "per_page", 25, MAX_PER_PAGE, errors))
    for start, end in (("opened_from", "opened_to"), ("closed_from", "closed_to")):
        a, b = getattr(query, start), getattr(query, end)
        if a and b and _start(a) > _start(b):
            errors[end] = [str(_l("The end date comes before the start date."))]
    if errors:
        raise ValidationFailed(_l("Please correct the marked fields."), details=errors)
    return query


def _industry_node(code: str) -> PlatformNode | None:
    wanted = code if code.startswith("industry.") else f"industry.{code}"
    return db.session.scalar(select(PlatformNode).where(
        PlatformNode.code == wanted, PlatformNode.kind == NodeKind.INDUSTRY))


# ---------------------------------------------------------------- the query


def state_of() -> ColumnElement[str]:
    """The contract's state of a case as one SQL expression (also its facet)."""
    return case(
        (Case.stuck_since.is_not(None), "stuck"),
        (Case.status == "error", "stuck"),
        (Case.status == "false_alarm", "false_alarm"),
        (Case.outcome == "cancelled", "cancelled"),
        (Case.status == "closed", "closed"),
        (Case.accepted_at.is_not(None), "in_progress"),
        else_="open")


def _state_filter(state: str) -> ColumnElement[bool]:
    not_stuck = and_(Case.stuck_since.is_(None), Case.status != "error")
    return {
        "open": and_(Case.status == "open", Case.accepted_at.is_(None), not_stuck),
        "in_progress": and_(Case.status == "open", Case.accepted_at.is_not(None), not_stuck),
        "stuck": or_(Case.stuck_since.is_not(None), Case.status == "error"),
        "closed": and_(Case.status == "closed", not_stuck,
                       or_(Case.outcome.is_(None), Case.outcome != "cancelled")),
        "cancelled": and_(Case.outcome == "cancelled", not_stuck),
        "false_alarm": and_(Case.status == "false_alarm", not_stuck),
    }[state]


def _late_accept(now: datetime) -> ColumnElement[bool]:
    return exists().where(CaseTask.case_id == Case.id, accept_step(),
                          CaseTask.status == "ready", CaseTask.due_at < now)


def overdue_filter(now: datetime) -> ColumnElement[bool]:
    """Open and past the closing deadline, or not accepted in time (as the overdue list)."""
    return and_(Case.status == "open", or_(Case.due_at < now, _late_accept(now)))


def not_yet_overdue(now: datetime) -> ColumnElement[bool]:
    """Open and not overdue (`overdue_filter`'s complement among open cases): no closing
    deadline or not past it, and the acceptance not late."""
    return and_(Case.status == "open", or_(Case.due_at.is_(None), Case.due_at >= now),
                ~_late_accept(now))


def _start(moment: date | datetime) -> datetime:
    """The first instant of a local day, or the local minute itself."""
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, time(), tzinfo=local_zone())


def _end(moment: date | datetime) -> datetime:
    """The instant after a local day (an end date counts whole), or the minute itself."""
    if isinstance(moment, datetime):
        return moment
    return _start(moment + timedelta(days=1))


def _text_filter(text: str) -> ColumnElement[bool]:
    """Case number, point code and name, address and text of the alerts (as the source sent
    them), and comments; LIKE wildcards in the text are literal."""
    pattern = contains_pattern(text.strip())
    like = dict(escape=ESCAPE)
    lowered = pattern.lower()
    return or_(
        Case.case_no.ilike(pattern, **like),
        Case.point_code.ilike(pattern, **like),
        Case.item_name.ilike(pattern, **like),
        exists().where(MonitoringPoint.id == Case.point_id,
                       MonitoringPoint.name.ilike(pattern, **like)),
        exists().where(CaseComment.case_id == Case.id,
                       func.lower(CaseComment.body).like(lowered, **like)),
        exists().where(Alert.case_id == Case.id,
                       func.lower(cast(Alert.payload, String)).like(lowered, **like)),
    )


@dataclass(frozen=True)
class Scope:
    """Where a user may look: everywhere, or under some tree paths."""

    everywhere: bool
    paths: tuple[str, ...]

    def condition(self) -> ColumnElement[bool]:
        if self.everywhere:
            return true()
        return in_scope(self.paths, Case.scope_path, Case.scenario_path)


def scope_of(user: User) -> Scope:
    """The cases `user` may list (case.view on a node covers it and what is under it)."""
    paths = scope_paths(user, "case.view")
    if not paths:
        raise Forbidden(_l("You do not have permission for this, or it is outside your scope."),
                        details={"action": "case.view"})
    root = db.session.scalar(select(PlatformNode.path).where(
        PlatformNode.kind == NodeKind.DISTRICT).limit(1))
    return Scope(root is not None and root in paths, tuple(paths))


def conditions(query: CaseQuery, scope: Scope, *, now: datetime, without: str | None = None
               ) -> list[ColumnElement[bool]]:
    """The WHERE of a search; `without` leaves one facet's own filter out."""
    where: list[ColumnElement[bool]] = [Case.is_test.is_(False), scope.condition()]
    if query.states and without != "state":
        where.append(or_(*[_state_filter(s) for s in query.states]))
    if query.raw_status:
        where.append(Case.status == query.raw_status)
    if query.levels and without != "level":
        where.append(Case.level.in_(query.levels))
    if query.scenarios and without != "scenario":
        where.append(Case.scenario.in_(query.scenarios))
    if query.industry:
        node = _industry_node(query.industry)
        where.append(Case.scenario_path.startswith(node.path, autoescape=True)
                     if node else false())
    if query.towns and without != "town":
        paths = db.session.scalars(select(PlatformNode.path).where(
            PlatformNode.code.in_(query.towns))).all()
        where.append(in_scope(paths, Case.scope_path))
    if query.department and without != "department":
        where.append(Case.owner_department_id == select(Department.id).where(
            Department.code == query.department).scalar_subquery())
    if query.loop and without != "loop":
        where.append(Case.loop_level == query.loop)
    if query.source and without != "source":
        where.append(Case.dedup_key.startswith(f"{query.source}|", autoescape=True))
    if query.overdue:
        where.append(overdue_filter(now))
    if query.opened_from:
        where.append(Case.opened_at >= _start(query.opened_from))
    if query.opened_to:
        where.append(Case.opened_at < _end(query.opened_to))
    if query.closed_from:
        where.append(Case.closed_at >= _start(query.closed_from))
    if query.closed_to:
        where.append(Case.closed_at < _end(query.closed_to))
    if query.evidence:
        where.append(exists().where(Attachment.case_id == Case.id))
    if query.q:
        where.append(_text_filter(query.q))
    if query.case_no:
        where.append(Case.case_no.contains(query.case_no.strip(), autoescape=True))
    if query.point_code:
        where.append(Case.point_code == query.point_code)
    return where


# ---------------------------------------------------------------- results


@dataclass
class SearchResult:
    query: CaseQuery
    items: list[Case]
    total: int
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)
    towns: dict[int, str] = field(default_factory=dict)  # case id -> street/town name

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


def _town_of_nodes(node_ids: set[int]) -> dict[int, PlatformNode]:
    """node id -> its street/town (a village's parent), for the nodes that lie in one."""
    nodes = {n.id: n for n in db.session.scalars(select(PlatformNode).where(
        PlatformNode.id.in_(node_ids)))} if node_ids else {}
    parents = {n.parent_id for n in nodes.values() if n.kind == NodeKind.VILLAGE}
    parent_nodes = {n.id: n for n in db.session.scalars(select(PlatformNode).where(
        PlatformNode.id.in_(parents)))} if parents else {}
    out: dict[int, PlatformNode] = {}
    for node_id, node in nodes.items():
        if node.kind == NodeKind.VILLAGE and node.parent_id in parent_nodes:
            out[node_id] = parent_nodes[node.parent_id]
        elif node.kind in (NodeKind.TOWN, NodeKind.LINGANG):
            out[node_id] = node
    return out


def source_of() -> ColumnElement[str]:
    """The source type of a case: the first part of its de-duplication key."""
    if db.session.get_bind().dialect.name == "sqlite":
        return func.substr(Case.dedup_key, 1, func.instr(Case.dedup_key, "|") - 1)
    return func.split_part(Case.dedup_key, "|", 1)


def search(user: User, query: CaseQuery, *, now: datetime, with_facets: bool = True
           ) -> SearchResult:
    """One page of the cases `user` may see that match `query`, with facet counts."""
    from app.services import case_counts  # it counts through this module's conditions

    scope = scope_of(user)
    where = conditions(query, scope, now=now)
    counted: dict[str, dict[Any, int]] | None = None
    if with_facets:
        counted, total = case_counts.search_counts(query, scope, now)
    else:
        total = case_counts.search_total(query, scope, now)
    page = min(query.page, max(1, -(-total // query.per_page)))
    items = list(db.session.scalars(select(Case).where(*where).order_by(*SORTS[query.sort])
                                    .offset((page - 1) * query.per_page)
                                    .limit(query.per_page)))
    found = SearchResult(replace(query, page=page), items, total,
                         case_counts.facets(query, scope, now=now, counted=counted)
                         if with_facets else {})
    towns = _town_of_nodes({c.node_id for c in items})
    found.towns = {c.id: towns[c.node_id].name for c in items if c.node_id in towns}
    return found


def link_params(base: Mapping[str, Any]) -> dict[str, Any]:
    """Drop empty values: for url_for with the contract's parameters."""
    return {k: v for k, v in base.items() if v not in (None, "", [], ())}

