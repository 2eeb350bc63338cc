"""Weather warning publication (annex 7 and 1): 区气象局 drafts, 应急管理局 verifies regional
and district-wide warnings, and publishing reaches the running cases of the scenarios whose
handbooks name the warning's type, in the warning's area. Each publication runs the
`warning_publication` handbook like a case."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from app.extensions import db
from app.i18n import _l
from app.models import Case, CaseEvent, PlatformNode, User
from app.services import case_engine, form_rules, notify
from app.services.case_engine import Completed
from app.services.case_numbers import next_case_number
from app.services.errors import DomainError
from app.services.handbooks import published_version
from app.services.permissions import OfDepartment, can, require
from app.services.steps import version_index

KEY = "warning_publication"
# 区气象局 publishes the district's warnings (annex 7); its own people draft them.
DRAFTING_DEPARTMENT = "meteorology"
# Who hears a warning in a reached case whose process has no weather step of its own: the
# same people the scenario processes' weather step notifies.
TOLD_ROLES = ("responder", "department_head")
# Form fields whose choices are shown by name on the warning's page.
CHOICE_FIELDS = ("warning_type", "level", "area")


def _drafting_department() -> OfDepartment | None:
    from app.services.lanes import department_node

    node = department_node(DRAFTING_DEPARTMENT)
    if node is None or node.department_id is None:
        return None
    return OfDepartment(node.department_id, node.path)


def may_start(actor: User) -> bool:
    """The meteorological bureau's department head and business administrators draft."""
    bureau = _drafting_department()
    return (bureau is not None and published_version(KEY) is not None
            and can(actor, "publication.start", bureau))


def start(actor: User, *, now: datetime) -> Case:
    """Open a publication on the published handbook; its first task is the draft."""
    version = published_version(KEY)
    if version is None:
        raise DomainError(_l("No published handbook for this scenario; a department head "
                             "must approve one first."), code="no_published_handbook",
                          status=409)
    require(actor, "publication.start", _drafting_department())
    case_no = next_case_number(KEY, now)
    node = version.node
    case = Case(
        case_no=case_no, scenario=KEY, item_code="weather_warning", item_name="气象预警发布",
        handbook_version_id=version.id, process_id=version.process_id, node=node,
        scope_path=node.path, scenario_path=node.path, owner_department_id=node.department_id,
        point_code="-", dedup_key=f"publication|{case_no}", status="open", level="blue",
        highest_level="blue", unit="", first_value=0.0, last_value=0.0, alert_count=0,
        first_seen=now, last_seen=now, opened_at=now, state={})
    db.session.add(case)
    db.session.flush()
    spec = case_engine.compiled(version)
    instance, result = case_engine.runtime().start(
        spec, version.process_id, {"case_no": case_no}, actor=actor.username, at=now)
    loaded = case_engine.Loaded(case, version, spec,
                                version_index(version), instance)
    case_engine.add_event(case, kind="opened", at=now, actor=actor,
                          version_hash=version.content_hash, data={"version": version.number})
    completed = case_engine.record_step(loaded, result, now=now, actor=actor)
    notify.after_step(case, completed, now=now)
    return case


def concerned_scenarios(warning_type: str) -> list[str]:
    """The scenarios whose published handbook names this type of weather warning."""
    from app.services.cases import handbook_or_none
    from app.services.handbook_data import platform_scenarios

    found = []
    for scenario in sorted(platform_scenarios()):
        version = published_version(scenario)
        handbook = handbook_or_none(version) if version is not None else None
        if handbook is not None and warning_type in handbook.weather_warning_types:
            found.append(scenario)
    return found


def _area_paths(payload: dict[str, Any]) -> list[str] | None:
    """Tree paths of the towns a warning covers; None for the whole district."""
    if payload.get("area") == "district_wide":
        return None
    codes = form_rules.codes(payload.get("towns"))
    return list(db.session.scalars(select(PlatformNode.path).where(
        PlatformNode.code.in_(codes)))) if codes else None


def reached_cases(payload: dict[str, Any]) -> list[Case]:
    """The running cases a published warning reaches: of a concerned scenario, in its area."""
    scenarios = concerned_scenarios(str(payload.get("warning_type") or ""))
    if not scenarios:
        return []
    query = select(Case).where(Case.scenario.in_(scenarios), Case.status == "open",
                               Case.is_test.is_(False))
    paths = _area_paths(payload)
    if paths is not None:
        query = query.where(or_(*(Case.scope_path.startswith(p, autoescape=True)
                                  for p in paths)))
    return list(db.session.scalars(query.order_by(Case.id)))


def broadcast(source: Case, completed: Iterable[Completed], data: dict[str, object], *,
              now: datetime) -> int:
    """When a step that carries `broadcast_message` completes, send that message with the
    publication's `broadcast` payload to every case the warning reaches."""
    from app.services import cases

    reached = 0
    for element in completed:
        message = element.properties.get("broadcast_message")
        if not message:
            continue
        raw = data.get("broadcast")
        payload: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        payload["publication"] = source.case_no
        targets = reached_cases(payload)
        for target in targets:
            handled = cases.send_message(target, message, dict(payload), now=now,
                                         expected_only=True)
            case_engine.add_event(
                target, kind="weather_warning", at=now, version_hash=_hash_of(target),
                data={"publication": source.case_no, "warning_type": payload.get("warning_type"),
                      "level": payload.get("level"), "area": payload.get("area"),
                      "handled": handled})
            if not handled:
                # The process has no weather step: its people hear of the warning all the same.
                notify.tell(target, TOLD_ROLES, "weather_warning",
                            notify.LEVEL_NAMES.get(str(payload.get("level")), "") + "气象预警",
                            now=now)
            reached += 1
        case_engine.add_event(source, kind="broadcast", at=now, version_hash=_hash_of(source),
                              element_id=element.element_id, element_name=element.name,
                              data={"message": message,
                                    "scenarios": sorted({t.scenario for t in targets}),
                                    "towns": form_rules.codes(payload.get("towns")),
                                    "cases": [t.case_no for t in targets]})
    return reached


def _hash_of(case: Case) -> str:
    from app.models import HandbookVersion

    version = db.session.get(HandbookVersion, case.handbook_version_id)
    return version.content_hash if version else ""


# What the warning's page shows.

@dataclass(frozen=True)
class ReachedCase:
    case_no: str
    scenario: str
    town: str
    level: str


@dataclass
class Summary:
    """A weather warning as published (or being drafted), and the cases it reached."""

    warning_type: str | None = None  # the choice's name as the handbook words it
    level: str | None = None  # level code
    area: str | None = None
    towns: list[str] = field(default_factory=list)
    content: str | None = None
    effective_at: datetime | None = None
    effective_until: datetime | None = None
    state: str = "drafting"  # drafting / verifying / published / not_published
    published_at: datetime | None = None
    reached: list[ReachedCase] = field(default_factory=list)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def summary(case: Case) -> Summary | None:
    """What a publication case says; None for any other case."""
    if case.scenario != KEY:
        return None
    loaded = case_engine.load(case)
    data = loaded.instance.data
    names: dict[str, dict[str, str]] = {}
    for element in loaded.compiled.elements(case.process_id):
        for f in loaded.compiled.form_fields(case.process_id, element.element_id):
            if f.id in CHOICE_FIELDS:
                names.setdefault(f.id, {}).update({o.id: o.name for o in f.options})

    def named(key: str) -> str | None:
        value = data.get(key)
        return names.get(key, {}).get(str(value), str(value)) if value else None

    towns = form_rules.codes(data.get("towns"))
    town_names = dict(db.session.execute(select(PlatformNode.code, PlatformNode.name).where(
        PlatformNode.code.in_(towns))).tuples().all()) if towns else {}
    found = Summary(warning_type=named("warning_type"),
                    level=str(data["level"]) if data.get("level") else None,
                    area=named("area"), towns=[town_names.get(c, c) for c in towns],
                    content=str(data["content"]) if data.get("content") else None,
                    effective_at=_moment(data.get("effective_at")),
                    effective_until=_moment(data.get("effective_until")),
                    published_at=_moment(data.get("published_at")))
    if data.get("published"):
        found.state = "published"
    elif case.status != "open":
        found.state = "not_published"
    elif data.get("warning_type"):
        found.state = "verifying"
    event = db.session.scalar(select(CaseEvent).where(
        CaseEvent.case_id == case.id, CaseEvent.kind == "broadcast").order_by(CaseEvent.seq))
    numbers = list((event.data or {}).get("cases") or []) if event is not None else []
    if numbers:
        rows = db.session.scalars(select(Case).where(Case.case_no.in_(numbers))).all()
        by_no = {c.case_no: c for c in rows}
        found.reached = [ReachedCase(n, by_no[n].scenario, by_no[n].node.name, by_no[n].level)
                         for n in numbers if n in by_no]
    return found
