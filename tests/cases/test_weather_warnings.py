"""Weather warnings reach the right cases and the right people: each handbook names the
warning types that concern it, the warning's area bounds it, 区气象局 drafts, 应急管理局
verifies, nobody verifies their own warning, and the warning's page says what was published."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseEvent, CaseTask, Notification, Role, User
from app.services import case_engine, cases, inbox, publications
from app.services.errors import DomainError, Forbidden, ValidationFailed
from cases_fixtures import fill_form

ROOT = Path(__file__).resolve().parents[2]
RAINSTORM = {"warning_type": "rainstorm", "level": "orange", "area": "district_wide",
             "content": "预计未来3小时浦东全区有暴雨，请做好防范。",
             "effective_at": "2026-07-26T10:00:00+08:00",
             "effective_until": "2026-07-26T16:00:00+08:00"}


def _ready(case_id: int) -> CaseTask:
    task = db.session.scalar(select(CaseTask).where(CaseTask.case_id == case_id,
                                                    CaseTask.status == "ready"))
    assert task is not None
    return task


def _complete(user_id: int, task: CaseTask, given: dict[str, Any], clock: Any) -> None:
    case = db.session.get(Case, task.case_id)
    fields = case_engine.load(case).compiled.form_fields(task.process_id, task.element_id)
    cases.complete(db.session.get(User, user_id), task.id, fill_form(fields, given),
                   now=clock())
    db.session.commit()


def _draft(user_id: int, clock: Any, **given: Any) -> int:
    publication = publications.start(db.session.get(User, user_id), now=clock())
    db.session.commit()
    _complete(user_id, _ready(publication.id), {**RAINSTORM, **given}, clock)
    return publication.id


@pytest.fixture
def bureaus(make_user) -> dict[str, int]:
    return {"drafter": make_user((Role.BUSINESS_ADMIN, "industry.meteorology"))["id"],
            "verifier": make_user((Role.DEPARTMENT_HEAD, "industry.emergency"))["id"]}


def _case(case_no: str) -> Case:
    found = db.session.scalar(select(Case).where(Case.case_no == case_no))
    assert found is not None
    return found


def _reached(publication_id: int) -> list[str]:
    event = db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == publication_id,
                                                      CaseEvent.kind == "broadcast"))
    assert event is not None
    return sorted(event.data["cases"])


def test_a_rainstorm_warning_reaches_flood_cases_and_not_road_snow_cases(
        app, published, point, send, bureaus, clock):
    point("FLOOD-P-1", "flood_typhoon")
    point("ICE-P-1", "rain_snow_ice")
    flood = send("flood_typhoon", "rainfall_1h_mm", 55.0, "FLOOD-P-1")["case_no"]  # yellow
    snow = send("rain_snow_ice", "snow_depth_cm", 4.0, "ICE-P-1")["case_no"]  # yellow
    with app.app_context():
        publication = _draft(bureaus["drafter"], clock)
        _complete(bureaus["verifier"], _ready(publication), {"verified": "approve"}, clock)
        assert _reached(publication) == [flood]
        assert _case(flood).level == "orange"
        road = _case(snow)
        assert (road.level, road.highest_level) == ("yellow", "yellow")
        assert not db.session.scalar(select(CaseEvent.id).where(
            CaseEvent.case_id == road.id, CaseEvent.kind.in_(("weather_warning",
                                                              "message_ignored"))))


def test_a_road_icing_warning_reaches_road_snow_cases(app, published, point, send, bureaus,
                                                      clock):
    point("FLOOD-P-1", "flood_typhoon")
    point("ICE-P-1", "rain_snow_ice")
    send("flood_typhoon", "rainfall_1h_mm", 55.0, "FLOOD-P-1")
    snow = send("rain_snow_ice", "snow_depth_cm", 4.0, "ICE-P-1")["case_no"]
    with app.app_context():
        publication = _draft(bureaus["drafter"], clock, warning_type="road_icing")
        _complete(bureaus["verifier"], _ready(publication), {"verified": "approve"}, clock)
        assert _reached(publication) == [snow]
        road = _case(snow)
        assert (road.level, road.highest_level) == ("orange", "orange")


def test_a_concerned_scenario_without_its_own_weather_step_is_still_told(
        app, published, point, send, bureaus, clock, make_user):
    """供排水 cares about rainstorms but its process has no weather step: the case records the
    warning and its people hear of it."""
    responder = make_user((Role.RESPONDER, "town.02"))["id"]
    point("WATER-P-1", "water")
    water_case = send("water", "pressure_drop_pct", 20.0, "WATER-P-1")  # yellow
    assert water_case["disposition"] == "opened"
    with app.app_context():
        publication = _draft(bureaus["drafter"], clock)
        _complete(bureaus["verifier"], _ready(publication), {"verified": "approve"}, clock)
        assert _reached(publication) == [water_case["case_no"]]
        target = _case(water_case["case_no"])
        kinds = db.session.scalars(select(CaseEvent.kind).where(
            CaseEvent.case_id == target.id)).all()
        assert "weather_warning" in kinds and "message_ignored" not in kinds
        told = db.session.scalars(select(Notification.user_id).where(
            Notification.case_id == target.id, Notification.kind == "weather_warning")).all()
        assert responder in told


def test_a_local_warning_reaches_only_the_cases_in_its_towns(app, published, point, send,
                                                             bureaus, clock):
    point("FLOOD-P-1", "flood_typhoon", town="town.02")
    point("FLOOD-P-2", "flood_typhoon", town="town.22")
    here = send("flood_typhoon", "rainfall_1h_mm", 55.0, "FLOOD-P-1")["case_no"]
    send("flood_typhoon", "rainfall_1h_mm", 55.0, "FLOOD-P-2")
    with app.app_context():
        # A local warning needs no verification: publishing follows the draft.
        publication = _draft(bureaus["drafter"], clock, area="local", towns="town.02")
        assert db.session.get(Case, publication).status == "closed"
        assert _reached(publication) == [here]


def test_a_local_warning_names_its_towns(app, published, bureaus, clock):
    with app.app_context():
        with pytest.raises(ValidationFailed) as refused:
            _draft(bureaus["drafter"], clock, area="local", towns="")
        assert "towns" in refused.value.details
        db.session.rollback()
        with pytest.raises(ValidationFailed) as unknown:
            _draft(bureaus["drafter"], clock, area="local", towns="town.02,nowhere")
        assert "towns" in unknown.value.details


def test_the_meteorology_bureau_drafts(app, published, make_user, clock):
    # The bureau's head and business administrators, and the district platform's
    # business administrator above every bureau (a role covers what lies under its node).
    allowed = [make_user((Role.BUSINESS_ADMIN, "industry.meteorology"))["id"],
               make_user((Role.DEPARTMENT_HEAD, "industry.meteorology"))["id"],
               make_user((Role.BUSINESS_ADMIN, "district"))["id"]]
    refused = [make_user((Role.BUSINESS_ADMIN, "industry.emergency"))["id"],
               make_user((Role.BUSINESS_ADMIN, "scenario.gas"))["id"],
               make_user((Role.RESPONDER, "industry.meteorology"))["id"]]
    with app.app_context():
        for user_id in allowed:
            publication = publications.start(db.session.get(User, user_id), now=clock())
            cases.claim(db.session.get(User, user_id), _ready(publication.id).id, now=clock())
            db.session.rollback()
        for user_id in refused:
            with pytest.raises(Forbidden):
                publications.start(db.session.get(User, user_id), now=clock())


def test_the_emergency_bureau_verifies(app, published, make_user, bureaus, clock):
    # The bureau's head, leader in charge and business administrators, also those who hold
    # the role on one of its scenarios (the flood scenario's administrator).
    verifiers = [make_user((Role.DEPARTMENT_HEAD, "industry.emergency"))["id"],
                 make_user((Role.BUSINESS_ADMIN, "scenario.flood_typhoon"))["id"],
                 make_user((Role.LEADER_IN_CHARGE, "industry.emergency"))["id"]]
    others = [make_user((Role.RESPONDER, "industry.emergency"))["id"],
              make_user((Role.DEPARTMENT_HEAD, "industry.construction"))["id"],
              make_user((Role.BUSINESS_ADMIN, "industry.meteorology"))["id"]]
    with app.app_context():
        publication = _draft(bureaus["drafter"], clock)
        verify = _ready(publication)
        assert verify.element_id == "Activity_verify_warning"
        for user_id in verifiers:
            user = db.session.get(User, user_id)
            assert verify.id in [t.id for t in inbox.inbox(user, now=clock()).items]
            cases.claim(user, verify.id, now=clock())
            db.session.rollback()
        for user_id in others:
            assert verify.id not in [t.id for t in inbox.inbox(
                db.session.get(User, user_id), now=clock()).items]
            with pytest.raises(Forbidden):
                cases.claim(db.session.get(User, user_id), verify.id, now=clock())
            db.session.rollback()


def test_the_drafter_never_verifies_their_own_warning(app, published, make_user, clock):
    both = make_user((Role.BUSINESS_ADMIN, "industry.meteorology"),
                     (Role.DEPARTMENT_HEAD, "industry.emergency"))["id"]
    with app.app_context():
        publication = _draft(both, clock)
        verify = _ready(publication)
        for attempt in (lambda: cases.claim(db.session.get(User, both), verify.id, now=clock()),
                        lambda: _complete(both, verify, {"verified": "approve"}, clock)):
            with pytest.raises(DomainError) as refused:
                attempt()
            assert refused.value.code == "separation_of_duties"
            assert refused.value.status == 403
            db.session.rollback()
        assert db.session.get(Case, publication).status == "open"


def test_the_drafter_is_told_why_on_the_task_page(app, published, make_user, clock, as_role):
    browser = as_role((Role.BUSINESS_ADMIN, "industry.meteorology"),
                      (Role.DEPARTMENT_HEAD, "industry.emergency"), locale="en")
    with app.app_context():
        publication = _draft(browser.account["id"], clock)
        verify_id = _ready(publication).id
    page = browser.post(f"/tasks/{verify_id}", {"verified": "approve"})
    text = page.get_data(as_text=True)
    assert page.status_code == 403
    assert "You completed 起草预警 of this case; another person must do 核定." in text


def test_highest_level_is_never_below_level(app, published, point, send, bureaus, clock):
    point("FLOOD-P-1", "flood_typhoon")
    point("FLOOD-P-2", "flood_typhoon")
    by_weather = send("flood_typhoon", "rainfall_1h_mm", 55.0, "FLOOD-P-1")["case_no"]
    by_alert = send("flood_typhoon", "rainfall_1h_mm", 55.0, "FLOOD-P-2")["case_no"]
    assert send("flood_typhoon", "rainfall_1h_mm", 85.0, "FLOOD-P-2")["case_no"] == by_alert
    with app.app_context():
        publication = _draft(bureaus["drafter"], clock)
        _complete(bureaus["verifier"], _ready(publication), {"verified": "approve"}, clock)
        for case_no in (by_weather, by_alert):
            case = _case(case_no)
            assert (case.level, case.highest_level) == ("orange", "orange"), case_no
        warning = db.session.get(Case, publication)
        assert (warning.level, warning.highest_level) == ("orange", "orange")
        # The invariant holds for any writer, not only the engine step.
        case = _case(by_weather)
        case.level = "red"
        assert case.highest_level == "red"
        case.highest_level = "yellow"
        assert case.highest_level == "red"
        db.session.rollback()


def test_the_warning_page_says_what_was_published_and_whom_it_reached(
        app, published, point, send, bureaus, clock, as_role):
    point("FLOOD-P-1", "flood_typhoon")
    flood = send("flood_typhoon", "rainfall_1h_mm", 55.0, "FLOOD-P-1")["case_no"]
    with app.app_context():
        publication = _draft(bureaus["drafter"], clock)
        _complete(bureaus["verifier"], _ready(publication), {"verified": "approve"}, clock)
        case_no = db.session.get(Case, publication).case_no
    page = as_role((Role.DEPARTMENT_HEAD, "industry.meteorology")).text(f"/cases/{case_no}")
    summary = page.split('id="summary"')[1].split("</section>")[0]
    for shown in ("暴雨", "橙色", "全区", "2026-07-26 10:00", "2026-07-26 16:00",
                  f'href="/cases/{flood}"', "气象预警发布"):
        assert shown in summary, shown
    visible = re.sub(r"<[^>]+>", " ", page.split("<main")[1])
    assert "None" not in visible
    assert "warning_publication" not in visible
    timeline = re.sub(r"<[^>]+>", " ", page.split('id="timeline"')[1].split("</section>")[0])
    assert not re.search(r"\bbroadcast\b", timeline)
    en = as_role((Role.DEPARTMENT_HEAD, "industry.meteorology"), locale="en")
    assert "Published to 1 running case" in en.text(f"/cases/{case_no}")


def test_every_event_kind_on_the_timeline_has_its_own_words():
    """An event kind written anywhere is named by the timeline, never shown as a raw code."""
    written: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for call in re.finditer(r"(?:add_event|_event_row)\((.*?)\)", text, re.S):
            written.update(re.findall(r'kind="(\w+)"', call.group(1)))
    assert {"opened", "claim", "broadcast", "correction"} <= written
    macros = (ROOT / "app/web/templates/cases/_macros.html").read_text(encoding="utf-8")
    described = set(re.findall(r"e\.kind == '(\w+)'", macros))
    assert written <= described, sorted(written - described)
    assert "{% else %}{{ e.kind }}" not in macros
