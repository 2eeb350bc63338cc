"""Overdue tracking (Art 9): late cases per department, in scope, with a moved clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseTask, Role, User
from app.services import overdue
from app.services.errors import Forbidden

YELLOW = {"Activity_assessment": {"verdict": "confirmed", "major_risk": False,
                                  "level": "yellow"}}


@pytest.fixture
def two_cases(published, point, send, people, drive) -> tuple[str, str]:
    """A gas case waiting to be accepted (accept due 02:31) and a flood case in assessment
    (closing due the next day at 02:01)."""
    point("GAS-MH-0001", "gas")
    point("FLOOD-0001", "flood_typhoon", town="town.22")
    gas = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")["case_no"]
    assert drive(gas, people, stop_at="Activity_accept", answers=YELLOW) == [
        "Activity_assessment"]
    flood = send("flood_typhoon", "rainfall_1h_mm", 60.0, "FLOOD-0001")["case_no"]
    return gas, flood


def _report(app, user_id: int, now: datetime, **kw) -> overdue.OverdueReport:
    with app.app_context():
        return overdue.overdue_cases(db.session.get(User, user_id), now, **kw)


def test_a_missed_accept_deadline_is_overdue_by_the_minute(app, two_cases, make_user, clock):
    gas, _flood = two_cases
    office = make_user((Role.DISTRICT_OFFICE, "district"))["id"]
    with app.app_context():
        task = db.session.scalar(select(CaseTask).join(Case).where(
            Case.case_no == gas, CaseTask.element_id == "Activity_accept"))
        assert task.due_at == datetime(2026, 7, 26, 2, 31, tzinfo=UTC)
    clock.now = datetime(2026, 7, 26, 2, 31, tzinfo=UTC)
    assert _report(app, office, clock()).total == 0  # due, not yet late
    clock.advance(hours=1, minutes=29)
    report = _report(app, office, clock())
    assert [(c.case_no, c.reasons, c.late_minutes) for c in report.cases] == [
        (gas, ("not_accepted",), 89)]
    only = report.cases[0]
    assert only.level == "yellow" and only.town == "陆家嘴街道"
    assert only.department_code == "construction" and only.late_hours == 1.5


def test_overdue_cases_are_grouped_per_department_most_late_first(app, two_cases, make_user,
                                                                  clock):
    gas, flood = two_cases
    office = make_user((Role.DISTRICT_OFFICE, "district"))["id"]
    clock.now = datetime(2026, 7, 27, 5, 0, tzinfo=UTC)
    report = _report(app, office, clock())
    assert [c.case_no for c in report.cases] == [gas, flood]
    first, second = report.cases
    assert first.reasons == ("not_accepted", "not_closed")
    assert first.late_minutes == 26 * 60 + 29  # from the earlier, accept deadline
    assert second.reasons == ("not_closed",) and second.late_minutes == 179
    assert second.town == "张江镇"
    assert [(d.code, d.count, d.not_accepted) for d in report.departments] == [
        ("construction", 1, 1), ("emergency", 1, 0)]
    only = _report(app, office, clock(), department="emergency")
    assert [c.case_no for c in only.cases] == [flood]


def test_closed_cases_are_never_overdue(app, two_cases, make_user, clock, people, drive):
    gas, _flood = two_cases
    office = make_user((Role.DISTRICT_OFFICE, "district"))["id"]
    drive(gas, people)
    clock.now = datetime(2026, 7, 28, 0, 0, tzinfo=UTC)
    assert [c.case_no for c in _report(app, office, clock()).cases] == [_flood]


def test_each_sees_only_the_overdue_cases_in_scope(app, two_cases, make_user, clock, people):
    gas, flood = two_cases
    clock.now = datetime(2026, 7, 27, 5, 0, tzinfo=UTC)
    gas_admin = people["business_admin"]
    emergency_admin = make_user((Role.BUSINESS_ADMIN, "industry.emergency"))["id"]
    town_head = make_user((Role.LEADER_IN_CHARGE, "town.22"))["id"]
    auditor = make_user((Role.AUDITOR, "district"))["id"]
    assert [c.case_no for c in _report(app, gas_admin, clock()).cases] == [gas]
    assert [c.case_no for c in _report(app, emergency_admin, clock()).cases] == [flood]
    assert [c.case_no for c in _report(app, town_head, clock()).cases] == [flood]
    assert _report(app, auditor, clock()).total == 2
    with pytest.raises(Forbidden):
        _report(app, people["responder"], clock())


def test_the_overdue_page_and_its_json(app, two_cases, as_role, clock):
    gas, flood = two_cases
    clock.now = datetime(2026, 7, 27, 5, 0, tzinfo=UTC)
    office = as_role(Role.DISTRICT_OFFICE)
    page = office.text("/operations/overdue")
    assert page.index(gas) < page.index(flood)
    assert 'class="list responsive overdue"' in page and 'data-label=' in page
    assert 'data-minutes="1589"' in page and 'data-minutes="179"' in page
    filtered = office.text("/operations/overdue?department=emergency")
    assert flood in filtered and gas not in filtered.split('class="list responsive overdue"')[1]
    data = office.get("/operations/overdue.json").get_json()
    assert data["total"] == 2
    assert [d["code"] for d in data["departments"]] == ["construction", "emergency"]
    late = data["departments"][1]["cases"][0]
    assert late["case_no"] == flood and late["late_minutes"] == 179
    assert late["late_hours"] == 3.0 and late["reasons"] == ["not_closed"]


def test_the_overdue_page_is_refused_without_the_role(app, two_cases, as_role):
    responder = as_role(Role.RESPONDER, node="town.02")
    assert responder.get("/operations/overdue").status_code == 403
    assert responder.get("/operations/overdue.json").status_code == 403
    assert 'href="/operations/"' not in responder.text("/")
    assert 'href="/operations/"' in as_role(Role.DEPARTMENT_HEAD, node="industry.emergency"
                                            ).text("/")


def test_a_case_from_an_unknown_point_says_so_instead_of_a_town(app, published, send, as_role,
                                                                 clock):
    case_no = send("gas", "ch4_lel", 30.0, "NOT-REGISTERED")["case_no"]
    clock.now = datetime(2026, 7, 28, 0, 0, tzinfo=UTC)
    office = as_role(Role.DISTRICT_OFFICE, locale="en")
    [late] = office.get("/operations/overdue.json").get_json()["departments"][0]["cases"]
    assert late["case_no"] == case_no and late["town"] is None
    assert "Unknown (point not registered)" in office.text("/operations/overdue")
