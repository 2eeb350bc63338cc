"""Case search: one scoped query for the page, the API and the exports; facets that follow
the other filters; test cases never shown; wrong parameters named, never a 500."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditRecord, Case, Role, User
from app.services import case_search, cases
from app.services.errors import Forbidden
from cases_fixtures import as_test_copy
from helpers import Api

Cases = dict[str, str]


@pytest.fixture
def world(published: None, point: Callable[..., str], send: Callable[..., dict[str, Any]],
          clock: Any) -> Cases:
    """Four cases: gas yellow and red in 陆家嘴 (town.02), gas orange in 张江 (town.22),
    flood in 张江."""
    made = {}
    for name, scenario, indicator, value, town in (
            ("gas_yellow", "gas", "ch4_lel", 30.0, "town.02"),
            ("gas_red", "gas", "ch4_lel", 120.0, "town.02"),
            ("gas_orange", "gas", "ch4_lel", 60.0, "town.22"),
            ("flood", "flood_typhoon", "rainfall_1h_mm", 60.0, "town.22")):
        code = point(f"PT-{name.upper().replace('_', '-')}", scenario, town=town)
        clock.advance(minutes=1)
        made[name] = str(send(scenario, indicator, value, code)["case_no"])
    return made


def _numbers(page: str) -> list[str]:
    return re.findall(r'<tr class="case-row[^"]*" data-case="([^"]+)"', page)


def _facet(page: str, name: str) -> dict[str, int]:
    section = page.split(f'data-facet="{name}"', 1)[1].split("</section>", 1)[0]
    return {v: int(n) for v, n in re.findall(
        r'data-value="([^"]+)"[^>]*>[^<]*?<span class="count">(\d+)</span>', section)}


def test_the_page_lists_every_case_in_scope_newest_first(app, world, as_role):
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    page = auditor.text("/cases/")
    assert _numbers(page) == [world["flood"], world["gas_orange"], world["gas_red"],
                              world["gas_yellow"]]
    local = as_role((Role.RESPONDER, "town.22"), locale="en").text("/cases/")
    assert sorted(_numbers(local)) == sorted([world["gas_orange"], world["flood"]])


def test_facets_count_with_every_filter_but_their_own(app, world, as_role):
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    page = auditor.text("/cases/?scenario=gas&town=town.02")
    assert sorted(_numbers(page)) == sorted([world["gas_yellow"], world["gas_red"]])
    # Scenario counts ignore the scenario filter but keep the town: 2 gas in 陆家嘴, no flood.
    assert _facet(page, "scenario") == {"gas": 2}
    # Town counts ignore the town filter but keep the scenario: gas in both towns.
    assert _facet(page, "town") == {"town.02": 2, "town.22": 1}
    assert _facet(page, "level") == {"red": 1, "yellow": 1}
    levels = auditor.text("/cases/?level=red&level=orange")
    assert sorted(_numbers(levels)) == sorted([world["gas_red"], world["gas_orange"]])
    assert _facet(levels, "scenario") == {"gas": 2}


def test_test_runs_never_appear_in_list_facets_or_api(app, world, as_role, make_user):
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    before = auditor.text("/cases/")
    with app.app_context():
        copy = as_test_copy(world["flood"], "TEST-2026-000001")
        db.session.commit()
    page = auditor.text("/cases/")
    assert copy not in _numbers(page) and world["flood"] in _numbers(page)
    assert _facet(page, "scenario") == _facet(before, "scenario")
    assert _numbers(auditor.text(f"/cases/?q={copy}")) == []
    account = make_user((Role.AUDITOR, "district"))
    api = Api(app.test_client())
    api.login(account["username"])
    body = api.get("/cases?per_page=100").get_json()
    assert copy not in [c["case_no"] for c in body["items"]]
    assert body["total"] == 4


def test_free_text_finds_point_comment_and_alert_text_with_wildcards_literal(
        app, world, as_role, make_user, clock):
    with app.app_context():
        writer = db.session.get(User, make_user((Role.BUSINESS_ADMIN, "district"))["id"])
        case = db.session.scalar(select(Case).where(Case.case_no == world["gas_orange"]))
        cases.add_comment(writer, case, "阀门井盖松动_需更换 100%", now=clock())
        db.session.commit()
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    assert _numbers(auditor.text("/cases/?q=PT-FLOOD")) == [world["flood"]]
    assert _numbers(auditor.text("/cases/?q=井盖松动")) == [world["gas_orange"]]
    assert _numbers(auditor.text("/cases/?q=动_需")) == [world["gas_orange"]]
    # A bare wildcard is literal text: it matches only the comment holding "%".
    assert _numbers(auditor.text("/cases/?q=%25")) == [world["gas_orange"]]
    assert _numbers(auditor.text("/cases/?q=_")) == [world["gas_orange"]]
    assert _numbers(auditor.text(f"/cases/?q={world['gas_red'][-4:]}")) == [world["gas_red"]]


def test_states_dates_and_sort(app, world, as_role, clock):
    with app.app_context():
        db.session.execute(update(Case).where(Case.case_no == world["gas_red"])
                           .values(accepted_at=clock()))
        db.session.execute(update(Case).where(Case.case_no == world["flood"])
                           .values(status="closed", closed_at=clock()))
        db.session.commit()
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    assert _numbers(auditor.text("/cases/?state=in_progress")) == [world["gas_red"]]
    assert _numbers(auditor.text("/cases/?state=closed")) == [world["flood"]]
    both = auditor.text("/cases/?state=open&state=closed")
    assert sorted(_numbers(both)) == sorted([world["flood"], world["gas_orange"],
                                             world["gas_yellow"]])
    assert _facet(both, "state") == {"open": 2, "in_progress": 1, "closed": 1}
    # 2026-07-26 02:00 UTC is 10:00 in Shanghai: the local day counts.
    assert len(_numbers(auditor.text("/cases/?opened_from=2026-07-26&opened_to=2026-07-26"))) == 4
    assert _numbers(auditor.text("/cases/?opened_to=2026-07-25")) == []
    assert _numbers(auditor.text("/cases/?closed_from=2026-07-26")) == [world["flood"]]
    ranked = _numbers(auditor.text("/cases/?sort=-level&state=open&state=in_progress"))
    assert ranked[0] == world["gas_red"]


@pytest.mark.parametrize(("query", "field"), [
    ("state=lost", "state"), ("level=purple", "level"), ("scenario=volcano", "scenario"),
    ("town=town.99", "town"), ("department=nowhere", "department"), ("loop=huge", "loop"),
    ("opened_from=26-07-2026", "opened_from"), ("opened_from=2026-07-27&opened_to=2026-07-01",
                                                "opened_to"),
    ("sort=random", "sort"), ("overdue=maybe", "overdue"), ("page=0", "page"),
    ("q=" + "x" * 101, "q"), ("industry=industry.none", "industry"), ("source=fax", "source")])
def test_wrong_parameters_are_named_on_the_page_and_in_the_api(app, world, as_role,
                                                               make_user, query, field):
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    response = auditor.get(f"/cases/?{query}")
    assert response.status_code == 422
    assert f'data-error-field="{field}"' in response.get_data(as_text=True)
    api = Api(app.test_client())
    api.login(make_user((Role.AUDITOR, "district"))["username"])
    answer = api.get(f"/cases?{query}")
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert field in answer.get_json()["details"]


def test_api_answers_facets_and_the_new_filters(app, world, make_user):
    api = Api(app.test_client())
    api.login(make_user((Role.AUDITOR, "district"))["username"])
    body = api.get("/cases?scenario=gas&level=red&level=orange").get_json()
    assert sorted(c["case_no"] for c in body["items"]) == sorted([world["gas_red"],
                                                                  world["gas_orange"]])
    levels = {f["value"]: f["count"] for f in body["facets"]["level"]}
    assert levels == {"red": 1, "orange": 1, "yellow": 1, "blue": 0}
    towns = {f["value"]: f["count"] for f in body["facets"]["town"]}
    assert towns == {"town.02": 1, "town.22": 1}
    assert api.get("/cases?town=town.22&source=iot").get_json()["total"] == 2
    assert api.get("/cases?source=social").get_json()["total"] == 0


def test_exports_stream_the_filtered_list_and_are_audited(app, world, as_role):
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    response = auditor.get("/cases/export?scenario=gas&format=csv")
    assert response.status_code == 200
    assert response.headers["X-Export-Rows"] == "3"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "案件编号"
    assert sorted(r[0] for r in rows[1:]) == sorted(
        [world["gas_yellow"], world["gas_red"], world["gas_orange"]])
    assert {r[6] for r in rows[1:]} == {"陆家嘴街道", "张江镇"}
    book = auditor.get("/cases/export?town=town.22&format=xlsx")
    assert book.headers["X-Export-Rows"] == "2"
    sheet = load_workbook(io.BytesIO(book.get_data()), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "案件编号"
    assert sorted(v[0] for v in values[1:]) == sorted([world["gas_orange"], world["flood"]])
    with app.app_context():
        found = db.session.scalars(select(AuditRecord).where(
            AuditRecord.action == "cases.export").order_by(AuditRecord.id)).all()
        assert [(r.after["format"], r.after["rows"]) for r in found] == [("csv", 3), ("xlsx", 2)]
    assert auditor.get("/cases/export?format=pdf").status_code == 422


def test_search_service_refuses_people_without_case_view(app, world, make_user, clock):
    account = make_user((Role.TECH_ADMIN, "district"))
    with app.app_context():
        tech = db.session.get(User, account["id"])
        with pytest.raises(Forbidden):
            case_search.search(tech, case_search.CaseQuery(), now=clock())
