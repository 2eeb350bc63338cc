"""The responders' inbox page: what it lists, in which order, filters with counts, claiming."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseTask, Role, User
from app.services import inbox

OpenCase = Callable[..., str]


@pytest.fixture
def people(make_user) -> dict[str, int]:
    return {
        "business_admin": make_user((Role.BUSINESS_ADMIN, "district"))["id"],
        "responder": make_user((Role.RESPONDER, "district"))["id"],
        "department_head": make_user((Role.DEPARTMENT_HEAD, "district"))["id"],
    }


@pytest.fixture
def open_case(published, point, send, drive, people, clock) -> OpenCase:
    """A case waiting for a responder to accept it; returns its number."""
    counter = iter(range(1, 1000))

    def make(value: float = 30.0, *, town: str = "town.02", scenario: str = "gas",
             indicator: str = "ch4_lel", minutes: int = 1) -> str:
        code = point(f"PT-{next(counter):04d}", scenario, town=town)
        clock.advance(minutes=minutes)
        case_no = send(scenario, indicator, value, code)["case_no"]
        drive(case_no, people, stop_at="Activity_accept")
        return case_no

    return make


def _rows(page: str) -> list[str]:
    """Case numbers of the inbox rows, in the order shown."""
    return re.findall(r'<tr class="task-row[^"]*" data-task="\d+" data-case="([^"]+)"', page)


def _task_id(app, case_no: str) -> int:
    with app.app_context():
        return db.session.scalar(select(CaseTask.id).join(Case).where(
            Case.case_no == case_no, CaseTask.status == "ready"))


def test_overdue_first_then_by_deadline_with_a_countdown(app, open_case, as_role, clock):
    yellow = open_case(30.0)           # accept within 30 min
    red = open_case(120.0, minutes=5)  # within 5 min
    orange = open_case(60.0, minutes=5)  # within 10 min
    clock.advance(minutes=6)
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    page = responder.text("/inbox")
    assert _rows(page) == [red, orange, yellow]
    row = page.split(f'data-case="{red}"')[1].split("</tr>")[0]
    assert 'class="badge level-red"' in row and ">Red<" in row  # colour with text
    assert re.search(r'class="due late" data-minutes="-\d+">Overdue by \d+ min<', row)
    assert "接单受理" in row and "燃气" in row and "陆家嘴" in row
    later = page.split(f'data-case="{yellow}"')[1].split("</tr>")[0]
    assert re.search(r'class="due" data-minutes="\d+">\d+ min left<', later)
    # Times on the page are Beijing time: the yellow deadline 02:3x UTC shows as 10:3x.
    assert re.search(r"07-26 10:\d\d", later)


def test_the_page_and_the_service_agree(app, open_case, as_role, people):
    for value in (30.0, 60.0, 120.0):
        open_case(value)
    responder = as_role((Role.RESPONDER, "town.02"))
    with app.app_context():
        user = db.session.get(User, responder.account["id"])
        expected = [t.case.case_no for t in inbox.inbox(user, now=app.extensions["clock"]()).items]
    assert _rows(responder.text("/inbox")) == expected


def test_filters_show_counts_and_narrow_the_list(app, open_case, as_role, clock):
    a = open_case(30.0, town="town.02")
    b = open_case(60.0, town="town.22")
    c = open_case(20.0, town="town.22", scenario="water", indicator="pressure_drop_pct")
    clock.advance(minutes=20)  # b (orange, 10 min) is overdue now
    responder = as_role((Role.RESPONDER, "district"), locale="en")
    page = responder.text("/inbox")
    assert sorted(_rows(page)) == sorted([a, b, c])
    assert re.search(r'value="gas"\s*>[^<]*\(2\)', page)
    assert re.search(r'value="water"\s*>[^<]*\(1\)', page)
    assert re.search(r'value="yellow"\s*>Yellow \(2\)', page)
    assert re.search(r'value="orange"\s*>Orange \(1\)', page)
    assert re.search(r">张江镇 \(2\)<", page) and re.search(r">陆家嘴街道 \(1\)<", page)
    assert re.search(r'data-filter="overdue"[^>]*>Overdue <span class="count">1</span>', page)
    assert _rows(responder.text("/inbox?scenario=water")) == [c]
    assert _rows(responder.text("/inbox?level=orange")) == [b]
    assert _rows(responder.text("/inbox?overdue=1")) == [b]
    with app.app_context():
        zhangjiang = db.session.scalar(select(Case.node_id).where(Case.case_no == b))
    assert sorted(_rows(responder.text(f"/inbox?town={zhangjiang}"))) == sorted([b, c])
    assert _rows(responder.text(f"/inbox?q={a}")) == [a]
    assert sorted(_rows(responder.text("/inbox?q=RQ-"))) == sorted([a, b])
    empty = responder.text("/inbox?q=NO-SUCH")
    assert _rows(empty) == [] and "No task matches these filters." in empty
    # Nonsense in the query string is ignored, not an error.
    assert responder.get("/inbox?level=purple&town=x&status=all&page=-3").status_code == 200


def test_the_counts_follow_the_other_filters(app, open_case, as_role, clock):
    open_case(30.0, town="town.02")
    open_case(60.0, town="town.22")
    open_case(20.0, town="town.22", scenario="water", indicator="pressure_drop_pct")
    clock.advance(minutes=20)  # the orange gas case is overdue now
    responder = as_role((Role.RESPONDER, "district"), locale="en")
    with app.app_context():
        zhangjiang = db.session.scalar(select(Case.node_id).where(Case.scenario == "water"))
    page = responder.text(f"/inbox?town={zhangjiang}")
    # In 张江: one gas case and one water case; the town list still offers every town.
    assert re.search(r'value="gas"\s*>[^<]*\(1\)', page)
    assert re.search(r'value="water"\s*>[^<]*\(1\)', page)
    assert re.search(r'value="yellow"\s*>Yellow \(1\)', page)
    assert re.search(r">陆家嘴街道 \(1\)<", page) and re.search(r">张江镇 \(2\)<", page)
    gas = responder.text("/inbox?scenario=gas")
    assert re.search(r'value="yellow"\s*>Yellow \(1\)', gas)
    assert re.search(r'data-filter="overdue"[^>]*>Overdue <span class="count">1</span>', gas)
    # The API answers the same numbers.
    token = responder.client.get("/api/v1/csrf").get_json()["csrf_token"]
    counts = responder.client.get(f"/api/v1/tasks/mine?town={zhangjiang}",
                                  headers={"X-CSRFToken": token}).get_json()["counts"]
    assert counts["scenarios"] == {"gas": 1, "water": 1} and counts["by_level"]["yellow"] == 1


def test_claim_and_release_from_the_inbox(app, open_case, as_role):
    case_no = open_case(30.0)
    task_id = _task_id(app, case_no)
    me = as_role((Role.RESPONDER, "town.02"), locale="en")
    colleague = as_role((Role.RESPONDER, "town.02"), locale="en")
    assert re.search(r'data-filter="claimable"[^>]*>To claim <span class="count">1</span>',
                     me.text("/inbox"))
    response = me.post(f"/tasks/{task_id}/claim")
    assert response.status_code == 302 and response.location.endswith(f"/tasks/{task_id}")
    mine = me.text("/inbox?status=mine")
    assert _rows(mine) == [case_no] and 'data-action="release"' in mine
    assert re.search(r'data-filter="mine"[^>]*>Claimed by me <span class="count">1</span>', mine)
    # The colleague no longer sees it, and cannot take it over.
    assert _rows(colleague.text("/inbox")) == []
    refused = colleague.post(f"/tasks/{task_id}/claim")
    assert refused.status_code == 409 and "has already claimed this task" in \
        refused.get_data(as_text=True)
    released = me.post(f"/tasks/{task_id}/release", data={"next": "/inbox?status=mine"})
    assert released.status_code == 302 and released.location.endswith("/inbox?status=mine")
    assert _rows(colleague.text("/inbox")) == [case_no]
    with app.app_context():
        assert db.session.get(CaseTask, task_id).claimed_by_id is None


def test_an_open_redirect_is_not_followed(app, open_case, as_role):
    task_id = _task_id(app, open_case(30.0))
    me = as_role((Role.RESPONDER, "town.02"))
    response = me.post(f"/tasks/{task_id}/claim", data={"next": "//evil.example/x"})
    assert response.location.endswith(f"/tasks/{task_id}")


def test_other_areas_and_departments_see_nothing(app, open_case, as_role):
    case_no = open_case(30.0, town="town.02")
    task_id = _task_id(app, case_no)
    for outsider in (as_role((Role.RESPONDER, "town.22")),
                     as_role((Role.RESPONDER, "scenario.elevator"))):
        assert _rows(outsider.text("/inbox")) == []
        assert outsider.get(f"/cases/{case_no}").status_code == 403
        task = outsider.get(f"/tasks/{task_id}")
        assert task.status_code == 403 and case_no not in task.get_data(as_text=True)
        assert outsider.post(f"/tasks/{task_id}/claim").status_code == 403
    # Right area, wrong lane: the business administrator's inbox has no responder task.
    admin = as_role((Role.BUSINESS_ADMIN, "scenario.gas"))
    assert _rows(admin.text("/inbox")) == []


def test_pages_of_twenty(app, open_case, as_role, clock):
    numbers = [open_case(30.0, minutes=0) for _ in range(21)]
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    first = responder.text("/inbox")
    assert len(_rows(first)) == 20 and "Page 1 of 2" in first
    assert 'href="/inbox?page=2"' in first
    second = responder.text("/inbox?page=2")
    assert len(_rows(second)) == 1
    assert set(_rows(first) + _rows(second)) == set(numbers)


def test_the_inbox_needs_a_log_in(client, dbconn):
    response = client.get("/inbox")
    assert response.status_code == 302 and "/login" in response.location


def test_header_links(app, open_case, as_role):
    responder = as_role((Role.RESPONDER, "town.02"))
    page = responder.text("/")
    assert 'data-nav="inbox"' in page and 'data-nav="notifications"' in page
    # An account administrator works on no case: no inbox link.
    admin = as_role((Role.SYSTEM_ADMIN, "district"))
    assert 'data-nav="inbox"' not in admin.text("/")


def test_a_case_number_filter_matches_its_characters_literally(app, open_case, as_role):
    """`%`, `_` and `\\` typed into the case-number box are characters, not wildcards."""
    from urllib.parse import quote
    case_no = open_case(30.0)
    me = as_role((Role.RESPONDER, "town.02"), locale="en")
    assert _rows(me.text(f"/inbox?q={quote(case_no[-3:])}")) == [case_no]
    for typed in ("%", "_", case_no[:-1] + "_", "\\", "%%"):
        assert _rows(me.text(f"/inbox?q={quote(typed)}")) == [], typed


def test_every_count_is_what_choosing_it_would_list(app, open_case, as_role, clock):
    """Each facet count, under every combination of the other filters, equals the number of
    rows the inbox lists once that choice is made (the counts and the rows are separate
    statements)."""
    import itertools

    for town, value, scenario, indicator in [
            ("town.02", 30.0, "gas", "ch4_lel"), ("town.22", 60.0, "gas", "ch4_lel"),
            ("town.22", 20.0, "water", "pressure_drop_pct"), ("town.02", 45.0, "gas", "ch4_lel")]:
        open_case(value, town=town, scenario=scenario, indicator=indicator)
    clock.advance(minutes=20)
    responder = as_role((Role.RESPONDER, "district"), locale="en")
    with app.app_context():
        user = db.session.get(User, responder.account["id"])
        now = app.extensions["clock"]()
        first = db.session.scalar(select(CaseTask).where(CaseTask.status == "ready"))
        first.claimed_by_id = user.id
        db.session.flush()
        towns = [n for n, in db.session.execute(select(Case.node_id).distinct())]
        numbers = [None, db.session.scalar(select(Case.case_no))[-2:]]
        checked = 0

        def listed(flt: inbox.InboxFilter) -> int:
            return len(inbox.inbox(user, flt, now=now, per_page=100).items)

        for scenario, level, town, status, overdue, number in itertools.product(
                (None, "gas", "water"), (None, "yellow"), (None, *towns),
                ("ready", "mine", "claimable"), (False, True), numbers):
            flt = inbox.InboxFilter(scenario=scenario, level=level, town_node_id=town,
                                    status=status, overdue_only=overdue, case_no=number)
            page = inbox.inbox(user, flt, now=now, per_page=100)
            assert page.total == len(page.items)
            counts = page.counts
            for lv, n in counts["by_level"].items():
                assert n == listed(replace(flt, level=lv))
            for sc, n in counts["scenarios"].items():
                assert n == listed(replace(flt, scenario=sc))
            for node_id, _, n in counts["towns"]:
                assert n == listed(replace(flt, town_node_id=node_id))
            # No choice is missing: the counts of a facet add up to the list without it.
            assert sum(counts["by_level"].values()) == listed(replace(flt, level=None))
            assert sum(counts["scenarios"].values()) == listed(replace(flt, scenario=None))
            assert sum(n for _, _, n in counts["towns"]) == listed(
                replace(flt, town_node_id=None))
            plain = replace(flt, status="ready", overdue_only=False)
            assert counts["total"] == listed(plain)
            assert counts["mine"] == listed(replace(plain, status="mine"))
            assert counts["overdue"] == listed(replace(flt, overdue_only=True))
            checked += 1
        db.session.rollback()
    assert checked == 3 * 2 * (1 + len(towns)) * 3 * 2 * 2
