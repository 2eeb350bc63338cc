"""Weather warning publication (annex 7 and 1): 区气象局 drafts, 应急管理局 verifies regional
and district-wide warnings, and publishing reaches the running cases of the scenarios it
concerns. Each publication runs the `warning_publication` handbook like a case."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.i18n import _l
from app.models import Case, User
from app.services import case_engine, notify
from app.services.case_engine import Completed
from app.services.case_numbers import next_case_number
from app.services.errors import DomainError
from app.services.handbooks import published_version
from app.services.permissions import require

KEY = "warning_publication"


def start(actor: User, *, now: datetime) -> Case:
    """Open a publication on the published handbook; its first task is the draft."""
    version = published_version(KEY)
    if version is None:
        raise DomainError(_l("No published handbook for this scenario; a department head "
                             "must approve one first."), code="no_published_handbook",
                          status=409)
    require(actor, "publication.start", version.node)
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
                                case_engine.index_for(version.content_hash,
                                                      lambda: version.files), instance)
    case_engine.add_event(case, kind="opened", at=now, actor=actor,
                          version_hash=version.content_hash, data={"version": version.number})
    completed = case_engine.record_step(loaded, result, now=now, actor=actor)
    notify.after_step(case, completed, now=now)
    return case


def broadcast(source: Case, completed: Iterable[Completed], data: dict[str, object], *,
              now: datetime) -> int:
    """When a step that carries `broadcast_message` completes, send that message with the
    publication's `broadcast` payload to every open case of the listed scenarios."""
    from app.services import cases

    reached = 0
    for element in completed:
        message = element.properties.get("broadcast_message")
        if not message:
            continue
        scenarios = [s.strip() for s in element.properties.get("scenarios", "").split(",")
                     if s.strip()]
        payload = data.get("broadcast") or {}
        targets = db.session.scalars(select(Case).where(
            Case.scenario.in_(scenarios), Case.status == "open")).all()
        for target in targets:
            cases.send_message(target, message, dict(payload) if isinstance(payload, dict)
                               else {"warning": payload}, now=now)
            reached += 1
        case_engine.add_event(source, kind="broadcast", at=now, version_hash="",
                              element_id=element.element_id, element_name=element.name,
                              data={"message": message, "scenarios": scenarios,
                                    "cases": [t.case_no for t in targets]})
    return reached
