"""Opening cases: a case for each new warning on its scenario's published handbook (or a
test case on a draft), its process started and its first step stored. The cases of a batch
are started one after the other and written together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.extensions import db
from app.i18n import _l
from app.models import Case, HandbookVersion, MonitoringPoint, PlatformNode
from app.services import case_engine, notify
from app.services.case_numbers import next_case_numbers
from app.services.case_variables import all_level_variables, start_variables
from app.services.cases import handbook_of
from app.services.errors import DomainError
from app.services.handbook_data import Handbook, limits_for
from app.services.handbook_schema import parse_duration
from app.services.handbooks import published_version
from app.services.steps import version_index

# How many new cases of a batch are written at a time, while the next ones start.
SEND_EVERY = 20


@dataclass(frozen=True)
class NewCase:
    scenario: str
    item_code: str
    level: str
    value: float
    observed_at: datetime
    point_code: str
    point: MonitoringPoint | None
    node: PlatformNode
    scenario_node: PlatformNode
    dedup_key: str


def open_case(request: NewCase, *, now: datetime) -> Case:
    """Start the published handbook's process for a new warning and store its first step."""
    return open_cases([request], now=now)[0]


def open_cases(requests: list[NewCase], *, now: datetime) -> list[Case]:
    """Open a case for each new warning, in order, on its scenario's published handbook:
    numbers taken once per scenario, and everything stored together (`start_cases`)."""
    versions: dict[str, HandbookVersion] = {}
    for scenario in dict.fromkeys(r.scenario for r in requests):
        version = published_version(scenario)
        if version is None:
            raise DomainError(_l("No published handbook for this scenario; a department head "
                                 "must approve one first."), code="no_published_handbook",
                              status=409)
        versions[scenario] = version
    numbers = {scenario: iter(next_case_numbers(
        scenario, now, sum(r.scenario == scenario for r in requests))) for scenario in versions}
    return start_cases([(versions[r.scenario], r, next(numbers[r.scenario]))
                        for r in requests], now=now)


def start_case(version: HandbookVersion, request: NewCase, *, case_no: str, now: datetime,
               is_test: bool = False) -> Case:
    """Open a case on `version` (a real one on the published version, a test case on a
    draft), start its process and store the first step."""
    return start_cases([(version, request, case_no)], now=now, is_test=is_test)[0]


def _new_case_ids(count: int) -> list[int | None]:
    """Ids for new case rows before they are written, so that a batch's cases, tasks and
    events each go out in one statement. PostgreSQL takes them from the table's sequence;
    elsewhere (None) each case is inserted on its own to learn its id."""
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        return [None] * count
    return list(connection.exec_driver_sql(
        "SELECT nextval(pg_get_serial_sequence('warning_case', 'id')) "
        "FROM generate_series(1, %s)", (count,)).scalars())


def _new_case(version: HandbookVersion, handbook: Handbook, request: NewCase, case_no: str,
              case_id: int | None, now: datetime, is_test: bool) -> Case:
    """The case row, before its process has started (every column the first step's
    events and projection read already set)."""
    item = handbook.item(request.item_code)
    return Case(
        id=case_id, is_test=is_test, case_no=case_no, scenario=request.scenario,
        item_code=item.code, item_name=item.name, handbook_version_id=version.id,
        process_id=version.process_id, node=request.node,
        scope_path=request.node.path, scenario_path=request.scenario_node.path,
        owner_department_id=request.scenario_node.department_id,
        point_code=request.point_code,
        point_id=request.point.id if request.point else None,
        dedup_key=request.dedup_key, status="open", level=request.level,
        highest_level=request.level, loop_level="small", unit=item.unit,
        first_value=request.value, last_value=request.value, alert_count=1,
        first_seen=request.observed_at, last_seen=request.observed_at, opened_at=now,
        due_at=now + parse_duration(limits_for(handbook, request.level).due),
        state={}, event_seq=0, last_event_hash="0" * 64, stuck_attempts=0)


def start_cases(openings: list[tuple[HandbookVersion, NewCase, str]], *, now: datetime,
                is_test: bool = False) -> list[Case]:
    """Open a case for each (version, request, case number), start its process and store
    its first step; then push each to the people its handbook names.

    The engine runs case by case; the rows are written together (`case_engine.Writes`): an
    INSERT of the cases with their state and one of their events (each case's chain is its
    own, as if opened alone) for every `SEND_EVERY` cases, each sent while the next cases
    start; then one of all their tasks, and one of the notices."""
    writes = case_engine.Writes()
    level_limits: dict[str, dict[str, dict[str, Any]]] = {}  # by version: they open at `now`
    opened: list[Case] = []
    # Nothing is flushed before `writes.store()`: the lookups below (lanes, recipients) do
    # not depend on the pending rows. Every `SEND_EVERY` cases the rows so far go out while
    # the engine starts the next ones; the notices are written when the batch ends, after
    # the cases they refer to.
    # A notice's reroute joins the case's history (`collecting`), before its rows are sent.
    with db.session.no_autoflush, notify.batch(), writes.behind.pending(), writes.collecting():
        for n, ((version, request, case_no), case_id) in enumerate(
                zip(openings, _new_case_ids(len(openings)), strict=True), start=1):
            handbook = handbook_of(version)
            item = handbook.item(request.item_code)
            case = _new_case(version, handbook, request, case_no, case_id, now, is_test)
            if case_id is None:
                db.session.add(case)
                db.session.flush()  # its id, for its task rows and events
            else:
                writes.new_case(case)
            limits = level_limits.get(version.content_hash)
            if limits is None:
                limits = level_limits[version.content_hash] = all_level_variables(handbook, now)
            data = start_variables(handbook, item, level=request.level, case_no=case_no,
                                   value=request.value, town=request.node.name,
                                   point=request.point.name if request.point
                                   else request.point_code, opened_at=now, limits=limits)
            spec = case_engine.compiled(version)
            instance, result = case_engine.runtime().start(spec, version.process_id, data,
                                                           actor="system", at=now)
            # A new case has no task rows yet: the step's sync need not look for any.
            loaded = case_engine.Loaded(case, version, spec, version_index(version),
                                        instance, tasks=[])
            writes.event(case, kind="opened", at=now, version_hash=version.content_hash,
                         actor_name="system",
                         data={"level": request.level, "value": request.value,
                               "point": request.point_code, "version": version.number})
            completed = case_engine.record_step(loaded, result, now=now, writes=writes)
            # Nobody follows a case that did not exist a moment ago.
            notify.after_step(case, completed, now=now, followed=False)
            notify.case_pushed(case, handbook, now=now)
            opened.append(case)
            if n % SEND_EVERY == 0:
                writes.send()
        writes.store()
    return opened
