"""Reminders and escalations reach somebody: a lane with nobody in scope hands its notice up
the handbook's fallback chain, the case records why, and a daily data-quality scan lists every
lane and town with nobody in scope. The accounts exist in a few towns only, as in real life."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobs import fire_timers, scan_staffing
from app.models import Case, CaseEvent, Notification, PlatformNode, Role, StaffingGap, User
from app.services import notify, org, staffing


@pytest.fixture
def sparse(app, published, make_user) -> dict[str, Any]:
    """Responders in 陆家嘴 and 张江 only; one business administrator for the flood
    scenario; the district safety committee office. No department head, no leader."""
    with app.app_context():
        # The accounts that published the handbooks hold district-wide roles: gone here.
        for user in db.session.scalars(select(User).where(
                User.username.in_(("hb.writer", "hb.reviewer")))):
            user.active = False
        db.session.commit()
    return {
        "rs_02": make_user((Role.RESPONDER, "town.02"), username="rs02")["id"],
        "rs_22": make_user((Role.RESPONDER, "town.22"), username="rs22")["id"],
        "flood_admin": make_user((Role.BUSINESS_ADMIN, "scenario.flood_typhoon"),
                                 username="floodadmin")["id"],
        "office": make_user((Role.DISTRICT_OFFICE, "district"), username="office")["id"],
    }


def _notes(app, case_no: str) -> list[tuple[str, int]]:
    with app.app_context():
        return [(n.kind, n.user_id) for n in db.session.scalars(
            select(Notification).join(Case, Notification.case_id == Case.id)
            .where(Case.case_no == case_no).order_by(Notification.id))]


def _run_timers(app, clock, case_no: str, minutes: int) -> None:
    """Fire every due timer of the case for `minutes` of clock time."""
    end = clock() + timedelta(minutes=minutes)
    for _ in range(60):
        with app.app_context():
            due = db.session.scalar(select(Case.next_timer_at).where(Case.case_no == case_no))
        if due is None or due > end:
            break
        clock.now = due + timedelta(seconds=1)
        fire_timers(app)


def _red_flood_case(point, send, drive, sparse, town: str) -> str:
    point("FLOOD-P-9", "flood_typhoon", town=town)
    case_no = send("flood_typhoon", "rainfall_1h_mm", 120.0, "FLOOD-P-9")["case_no"]
    drive(case_no, {"business_admin": sparse["flood_admin"]}, stop_at="Activity_accept")
    return case_no


def test_reminders_and_escalations_in_a_town_without_responders_reach_someone(
        app, published, point, send, drive, sparse, clock):
    case_no = _red_flood_case(point, send, drive, sparse, "town.05")
    _run_timers(app, clock, case_no, minutes=30)
    notes = _notes(app, case_no)
    to = {kind: {user for k, user in notes if k == kind} for kind, _ in notes}
    assert len([k for k, _ in notes if k == "reminder"]) >= 3
    # Nobody responds in town.05: the flood scenario's business administrator is reminded.
    assert to["reminder"] == {sparse["flood_admin"]}
    assert to["push"] >= {sparse["flood_admin"]}
    # No department head nor leader anywhere: escalation and supervision climb to 区安委办.
    assert to["escalation"] == {sparse["office"]}
    assert to["supervision"] == {sparse["office"]}
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        rerouted = db.session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.kind == "notice_rerouted")).all()
        lanes = {(e.data["lane"], e.data["notice"], e.data["role"]) for e in rerouted}
        assert ("responder", "reminder", "business_admin") in lanes
        assert ("department_head", "escalation", "district_office") in lanes
        assert ("leader_in_charge", "supervision", "district_office") in lanes
        assert all(e.data["to"] for e in rerouted)
        assert not db.session.scalar(select(CaseEvent.id).where(
            CaseEvent.case_id == case.id, CaseEvent.kind == "notice_undelivered"))
        body = db.session.scalar(select(Notification.body).where(
            Notification.case_id == case.id, Notification.kind == "reminder"))
        assert "处置人员在本案范围内无人" in body


def test_the_case_page_says_who_got_a_rerouted_notice_and_why(
        app, published, point, send, drive, sparse, clock, as_role):
    case_no = _red_flood_case(point, send, drive, sparse, "town.05")
    _run_timers(app, clock, case_no, minutes=3)
    page = as_role((Role.BUSINESS_ADMIN, "scenario.flood_typhoon"), locale="en").text(
        f"/cases/{case_no}")
    assert ("Nobody in scope for the lane Responder: the notice went to Business administrator "
            "(floodadmin).") in page


def test_a_town_with_responders_keeps_its_reminders(app, published, point, send, drive,
                                                    sparse, clock):
    case_no = _red_flood_case(point, send, drive, sparse, "town.02")
    _run_timers(app, clock, case_no, minutes=8)
    reminded = {user for kind, user in _notes(app, case_no) if kind == "reminder"}
    assert reminded == {sparse["rs_02"]}
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        lanes = [e.data["lane"] for e in db.session.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.kind == "notice_rerouted"))]
        assert "responder" not in lanes


def test_a_notice_climbs_and_never_goes_down(app, published, point, send, drive, sparse):
    _red_flood_case(point, send, drive, sparse, "town.05")
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.scenario == "flood_typhoon"))
        assert [(s["role"], s["scope"]) for s in notify.fallback_steps(case, "responder")] == [
            ("business_admin", "town"), ("business_admin", "department"),
            ("department_head", "department"), ("district_office", "district")]
        assert [s["role"] for s in notify.fallback_steps(case, "leader_in_charge")] == [
            "district_office"]


def _gaps(process_key: str, lane: str) -> set[str]:
    return set(db.session.scalars(select(PlatformNode.code).join(
        StaffingGap, StaffingGap.node_id == PlatformNode.id).where(
        StaffingGap.process_key == process_key, StaffingGap.lane == lane,
        StaffingGap.resolved_at.is_(None))))


def test_the_daily_scan_lists_lanes_and_towns_with_nobody_in_scope(app, published, sparse,
                                                                   clock, make_user):
    with app.app_context():
        staffing.scan(clock())
        db.session.commit()
        towns = {n.code for n in org.places()}
        assert _gaps("flood_typhoon", "responder") == towns - {"town.02", "town.22"}
        # The scenario's own business administrator covers every town of it.
        assert _gaps("flood_typhoon", "business_admin") == set()
        assert "town.02" in _gaps("gas", "business_admin")
        assert _gaps("flood_typhoon", "department_head") == towns
        # Department lanes: 区气象局 has nobody to draft, 应急管理局 somebody to verify.
        assert _gaps("warning_publication", "meteorology") == {"industry.meteorology"}
        assert _gaps("warning_publication", "emergency") == set()
    # Someone starts in 川沙: the next scan resolves that gap and keeps the others.
    make_user((Role.RESPONDER, "town.05"))
    with app.app_context():
        clock.advance(days=1)
        staffing.scan(clock())
        db.session.commit()
        assert "town.05" not in _gaps("flood_typhoon", "responder")
        assert "town.06" in _gaps("flood_typhoon", "responder")
        resolved = db.session.scalar(select(StaffingGap).join(PlatformNode).where(
            StaffingGap.process_key == "flood_typhoon", StaffingGap.lane == "responder",
            PlatformNode.code == "town.05"))
        assert resolved is not None and resolved.resolved_at == clock()


def test_the_scan_runs_once_a_day(app, published, sparse, clock):
    assert scan_staffing(app) is True
    clock.advance(hours=5)
    assert scan_staffing(app) is False
    clock.advance(hours=20)
    assert scan_staffing(app) is True


def test_the_gaps_are_shown_with_the_other_data_quality_findings(app, published, sparse,
                                                                 clock, as_role):
    with app.app_context():
        staffing.scan(clock())
        db.session.commit()
        name = org.node_by_code("town.05").name
    page = as_role((Role.DISTRICT_OFFICE, "district"), locale="en").text("/operations/quality")
    section = page.split('id="staffing"')[1].split("</section>")[0]
    assert "Lanes with nobody in scope" in page
    assert "Responder" in section and name in section
    # Scoped: the construction commission's head sees gas, not flood.
    gas = as_role((Role.DEPARTMENT_HEAD, "industry.construction"), locale="en").text(
        "/operations/quality")
    scoped = gas.split('id="staffing"')[1].split("</section>")[0]
    assert "Gas" in scoped or "燃气" in scoped
    assert "防汛防台" not in scoped
