"""The duty board and the risk map: figures over open cases in scope, links to the case list,
test runs left out, the town list complete with its positions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Case, Role
from app.services import duty_board, org
from cases_fixtures import as_test_copy


@pytest.fixture
def board_world(published: None, point: Callable[..., str],
                send: Callable[..., dict[str, Any]], clock: Any) -> dict[str, str]:
    made = {}
    for name, scenario, indicator, value, town in (
            ("gas_red", "gas", "ch4_lel", 120.0, "town.02"),
            ("gas_yellow", "gas", "ch4_lel", 30.0, "town.22"),
            ("flood", "flood_typhoon", "rainfall_1h_mm", 60.0, "town.22")):
        code = point(f"PT-{name.replace('_', '-')}", scenario, town=town)
        made[name] = str(send(scenario, indicator, value, code)["case_no"])
    return made


def _data(browser: Any, query: str = "") -> dict[str, Any]:
    response = browser.get(f"/board/data{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.get_json())


def test_board_counts_open_cases_by_level_scenario_and_town(app, board_world, as_role, clock):
    officer = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    data = _data(officer)
    assert data["open"] == 3
    assert data["new_last_hour"] == 3
    gas = next(row for row in data["matrix"] if row["scenario"] == "gas")
    assert gas["counts"] == {"red": 1, "orange": 0, "yellow": 1, "blue": 0}
    towns = {t["code"]: t["count"] for t in data["towns"]}
    assert towns == {"town.02": 1, "town.22": 2}
    assert data["escalated"] == {"medium": 0, "big": 0}
    assert data["silent_feeds"] is None or isinstance(data["silent_feeds"], list)
    for _ in range(3):  # an idle session would end after 30 minutes
        clock.advance(minutes=22)
        later = _data(officer)
    assert later["new_last_hour"] == 0
    assert later["overdue"] >= 1  # the red gas case was to be accepted within minutes


def test_board_follows_loops_stuck_and_leaves_test_runs_out(app, board_world, as_role):
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    before = _data(auditor)
    with app.app_context():
        db.session.execute(update(Case).where(Case.case_no == board_world["gas_red"])
                           .values(loop_level="big"))
        as_test_copy(board_world["gas_red"], "TEST-2026-000001")
        as_test_copy(board_world["flood"], "TEST-2026-000002")
        db.session.commit()
    data = _data(auditor)
    assert data["open"] == before["open"] == 3
    assert data["escalated"]["big"] == 1
    assert data["matrix"] == before["matrix"]
    assert sum(row["total"] for row in data["matrix"]) == 3
    assert sum(t["count"] for t in data["towns"]) == 3
    assert before["stuck"] == data["stuck"] == 0
    with app.app_context():
        db.session.execute(update(Case).where(Case.case_no == board_world["flood"])
                           .values(stuck_since=app.extensions["clock"]()))
        db.session.commit()
    stuck = _data(auditor)
    assert stuck["stuck"] == 1 and stuck["open"] == 3 and stuck["matrix"] == before["matrix"]


def test_a_department_sees_its_own_board(app, board_world, as_role):
    head = as_role((Role.DEPARTMENT_HEAD, "industry.construction"), locale="en")
    data = _data(head)
    assert {row["scenario"] for row in data["matrix"]} == {"gas"}
    officer = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    assert _data(officer, "?department=emergency")["open"] == 1
    wrong = officer.get("/board/data?department=nowhere",
                        headers={"Accept": "application/json"})
    assert wrong.status_code == 422
    assert "department" in wrong.get_json()["details"]
    assert as_role((Role.RESPONDER, "town.02")).get("/board").status_code == 403


def test_board_figures_click_through_to_the_case_list_that_matches(app, board_world,
                                                                   as_role):
    """The page's links use the case-list contract: following each gives that figure."""
    officer = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    data = _data(officer)
    page = officer.text("/board")
    assert 'data-board' in page and 'data-refresh="5000"' in page
    opened = "state=open&state=in_progress&state=stuck"
    listed = officer.text(f"/cases/?{opened}&level=red&scenario=gas")
    assert re.findall(r'data-case="([^"]+)"', listed) == [board_world["gas_red"]]
    listed = officer.text(f"/cases/?{opened}&town=town.22")
    assert len(re.findall(r'<tr class="case-row', listed)) == 2
    since = officer.text(f"/cases/?opened_from={data['new_since']}")
    assert len(re.findall(r'<tr class="case-row', since)) == data["new_last_hour"]
    assert dict(parse_qsl(f"opened_from={data['new_since']}"))["opened_from"][10] == "T"


def test_big_screen_and_map_pages_render(app, board_world, as_role):
    officer = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    assert "big-screen" in officer.text("/board?screen=big")
    page = officer.text("/map")
    assert "data-risk-map" in page and "Schematic map" in page


def test_risk_map_has_every_town_and_points_coloured_by_level(app, board_world, as_role):
    officer = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    data = officer.get("/map/data").get_json()
    with app.app_context():
        places = {n.code for n in org.places()}
    assert {t["code"] for t in data["towns"]} == places
    assert len(places) == 37  # 36 streets and towns and Lingang
    assert data["datum"] == "WGS-84"
    counts = {t["code"]: t["count"] for t in data["towns"] if t["count"]}
    assert counts == {"town.02": 1, "town.22": 2}
    levels = {p["code"]: p["level"] for p in data["points"]}
    assert levels["PT-gas-red"] == "red" and levels["PT-gas-yellow"] == "yellow"
    red_only = officer.get("/map/data?level=red").get_json()
    assert [p["code"] for p in red_only["points"]] == ["PT-gas-red"]
    assert {t["code"]: t["count"] for t in red_only["towns"] if t["count"]} == {"town.02": 1}
    flood = officer.get("/map/data?scenario=flood_typhoon").get_json()
    assert [p["code"] for p in flood["points"]] == ["PT-flood"]
    assert officer.get("/map/data?level=purple").status_code == 422


def test_town_centres_keep_their_relative_positions():
    """Lujiazui lies north of Sanlin, west of Zhangjiang; Nanhui Xincheng south-east of all."""
    places = duty_board.centroids()["centroids"]
    lujiazui, sanlin, zhangjiang, nanhui = (places[c] for c in ("town.02", "town.23",
                                                                "town.22", "town.36"))
    assert lujiazui[1] > sanlin[1] and lujiazui[0] < zhangjiang[0]
    assert all(nanhui[0] >= p[0] and nanhui[1] <= p[1] + 0.05 for p in places.values()
               if p is not places["lingang"])


def test_a_disposal_escalated_to_the_medium_loop_counts_on_the_board(
        app, published, point, send, drive, make_user, as_role):
    people = {"business_admin": make_user((Role.BUSINESS_ADMIN, "district"))["id"],
              "responder": make_user((Role.RESPONDER, "district"))["id"],
              "department_head": make_user((Role.DEPARTMENT_HEAD, "district"))["id"],
              "leader_in_charge": make_user((Role.LEADER_IN_CHARGE, "district"))["id"]}
    point("PT-LOOP", "gas", town="town.02")
    case_no = send("gas", "ch4_lel", 30.0, "PT-LOOP")["case_no"]
    done = drive(case_no, people, answers={"Activity_dispose": {"escalate": "medium"}},
                 steps=4)
    assert "Activity_dispose" in done
    with app.app_context():
        assert db.session.scalar(select(Case.loop_level).where(
            Case.case_no == case_no)) == "medium"
    officer = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    assert _data(officer)["escalated"]["medium"] == 1
