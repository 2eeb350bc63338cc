"""Technical cases of feed outages (Art 8, 13, 15): a silent point or a stopped source opens a
case of the `feed_outage` handbook for the tech administrator and the technical support unit;
the case closes by itself when data returns (the process receives `data_returned`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, Case, FeedOutage, MonitoringPoint, PlatformNode
from app.services import case_engine, cases, notify
from app.services.case_numbers import next_case_number
from app.services.handbooks import published_version
from app.services.steps import version_index

KEY = "feed_outage"


def open_case(outage: FeedOutage, *, now: datetime) -> Case | None:
    """Open the outage's case; None while no version of the handbook is published (the outage
    is still recorded and listed)."""
    version = published_version(KEY)
    if version is None:
        return None
    point = db.session.get(MonitoringPoint, outage.point_id) if outage.point_id else None
    key = db.session.get(ApiKey, outage.api_key_id) if outage.api_key_id else None
    node = point.node if point is not None else version.node
    line = None
    if point is not None:
        line = db.session.scalar(select(PlatformNode).where(
            PlatformNode.code == f"scenario.{point.scenario}"))
    scenario_node = line or version.node
    what = point.code if point is not None else (key.prefix if key else "-")
    name = (f"监测点{point.code}数据中断" if point is not None
            else f"数据源{key.name if key else ''}停止推送")
    case_no = next_case_number(KEY, now)
    case = Case(
        case_no=case_no, scenario=KEY, item_code=f"outage_{outage.kind}", item_name=name[:120],
        handbook_version_id=version.id, process_id=version.process_id, node=node,
        scope_path=node.path, scenario_path=scenario_node.path,
        owner_department_id=(point.owner_department_id if point is not None
                             else version.node.department_id),
        point_code=what, point_id=point.id if point is not None else None,
        dedup_key=f"outage|{outage.kind}|{what}", status="open", level="blue",
        highest_level="blue", unit="", first_value=0.0, last_value=0.0, alert_count=0,
        first_seen=outage.silent_since, last_seen=outage.silent_since, opened_at=now, state={})
    db.session.add(case)
    db.session.flush()
    spec = case_engine.compiled(version)
    instance, result = case_engine.runtime().start(
        spec, version.process_id, {"case_no": case_no, "point": what, "kind": outage.kind,
                                   "silent_since": outage.silent_since.isoformat()},
        actor="system", at=now)
    loaded = case_engine.Loaded(case, version, spec,
                                version_index(version), instance)
    case_engine.add_event(case, kind="opened", at=now, version_hash=version.content_hash,
                          data={"version": version.number, "outage": outage.id})
    completed = case_engine.record_step(loaded, result, now=now)
    notify.after_step(case, completed, now=now)
    outage.case_id = case.id
    return case


def data_returned(outages: list[FeedOutage], *, now: datetime) -> int:
    """Tell the open cases of ended outages that data is back; they close."""
    closed = 0
    for outage in outages:
        if outage.case_id is None:
            continue
        case = db.session.get(Case, outage.case_id)
        if case is None or case.status != "open":
            continue
        if cases.send_message(case, "data_returned", {"at": now.isoformat()}, now=now,
                              expected_only=True):
            closed += 1
    return closed
