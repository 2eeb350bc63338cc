"""The case list's counts kept by triggers (`case_tally`): they follow every change of a case
made by any statement, add up to what the cases themselves say, answer the searches they can
exactly as the cases do, and are put right when damaged."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import Case, CaseTally, Role, User
from app.services import case_counts, case_search, case_tally, org
from cases_fixtures import as_test_copy


def _sums() -> dict[tuple[Any, ...], int]:
    columns = [CaseTally.__table__.c[name] for name in case_tally.KEY]
    rows = db.session.execute(select(*columns, func.sum(CaseTally.n)).group_by(*columns))
    return {tuple(r[:-1]): int(r[-1]) for r in rows if r[-1]}


def _same_as_cases() -> None:
    assert _sums() == case_tally.expected()


@pytest.fixture
def five(published: None, point: Callable[..., str], send: Callable[..., dict[str, Any]],
         clock: Any) -> list[str]:
    made = []
    for n, (scenario, indicator, value, town) in enumerate((
            ("gas", "ch4_lel", 30.0, "town.02"), ("gas", "ch4_lel", 120.0, "town.02"),
            ("gas", "ch4_lel", 60.0, "town.22"), ("flood_typhoon", "rainfall_1h_mm", 60.0,
                                                  "town.22"),
            ("gas", "ch4_lel", 60.0, "town.02.v001"))):
        code = point(f"PT-TALLY-{n}", scenario, town=town)
        clock.advance(minutes=1)
        made.append(str(send(scenario, indicator, value, code)["case_no"]))
    return made


def _change(case_no: str, **values: Any) -> None:
    db.session.execute(update(Case).where(Case.case_no == case_no).values(**values))
    db.session.flush()


def test_the_tally_follows_every_change_of_a_case(ctx, five, clock):
    _same_as_cases()
    assert sum(_sums().values()) == 5
    now = clock()
    village = org.node_by_code("town.22.v001")
    for values in ({"accepted_at": now}, {"status": "closed", "closed_at": now},
                   {"outcome": "cancelled"}, {"status": "false_alarm"},
                   {"stuck_since": now}, {"stuck_since": None, "status": "error"},
                   {"status": "open", "level": "red"}, {"loop_level": "big"},
                   {"node_id": village.id, "scope_path": village.path},
                   {"dedup_key": "social|PT-X|x"},
                   {"item_name": "不计入计数的字段"}):
        _change(five[2], **values)
        _same_as_cases()
    # A test copy never counts; a deleted case stops counting.
    as_test_copy(five[3], "TEST-2026-000009")
    _same_as_cases()
    assert sum(_sums().values()) == 5
    # Rows of +1 and -1 pile up until compaction sums them: then one row per key.
    rows = db.session.scalar(select(func.count()).select_from(CaseTally))
    assert rows > len(_sums())
    case_tally.compact()
    _same_as_cases()
    assert db.session.scalar(select(func.count()).select_from(CaseTally)) == len(_sums())
    assert min(db.session.scalars(select(CaseTally.n))) > 0


def test_a_village_case_counts_in_its_street_or_town(ctx, five):
    town = org.node_by_code("town.02")
    in_town = sum(n for key, n in _sums().items()
                  if key[case_tally.KEY.index("place_id")] == town.id)
    assert in_town == 3  # two cases in 陆家嘴 itself, one in its village


QUERIES = [
    "", "state=open", "state=closed&state=false_alarm", "level=red", "level=red&level=orange",
    "scenario=gas", "scenario=flood_typhoon&level=orange", "town=town.02", "town=town.22",
    "department=construction", "department=emergency", "loop=big", "source=iot",
    "source=social", "industry=construction", "scenario=gas&town=town.02&state=open",
    "overdue=1", "overdue=1&town=town.02", "overdue=1&state=in_progress&scenario=gas",
    "overdue=1&level=red&level=yellow",
]


def _query(raw: str) -> case_search.CaseQuery:
    return case_search.parse_query(MultiDict([tuple(p.split("=", 1)) for p in raw.split("&")
                                              if p]))


YELLOW = {"Activity_assessment": {"verdict": "confirmed", "major_risk": False,
                                  "level": "yellow"}}


def test_counts_from_the_tally_equal_counts_from_the_cases(ctx, five, make_user, clock, drive,
                                                          people):
    assert drive(five[0], people, stop_at="Activity_accept", answers=YELLOW) == [
        "Activity_assessment"]
    now = clock()
    _change(five[1], status="closed", closed_at=now, loop_level="big")
    _change(five[3], dedup_key="social|PT-Y|x", stuck_since=now)
    # Overdue three ways: past the closing deadline, no deadline (never overdue), and (two
    # hours on) not accepted in time while the closing deadline is still ahead.
    _change(five[4], due_at=now - timedelta(hours=1), accepted_at=now)
    _change(five[2], due_at=None)
    readers = [make_user((Role.AUDITOR, "district")),
               make_user((Role.RESPONDER, "town.02")),
               make_user((Role.DEPARTMENT_HEAD, "industry.construction")),
               make_user((Role.BUSINESS_ADMIN, "town.02"), (Role.RESPONDER, "town.22"))]
    compared = 0
    overdue = set()
    for account, raw, at in itertools.product(readers, QUERIES, (now, now + timedelta(hours=2))):
        scope = case_search.scope_of(db.session.get(User, account["id"]))
        query = _query(raw)
        assert case_tally.answers(query, scope), raw
        # The tally keys a place by its street or town, the cases by the place itself: the
        # facets shown (per street or town) and the total must be the same.
        got, got_total = case_counts.search_counts(query, scope, at, tally=True)
        want, want_total = case_counts.search_counts(query, scope, at, tally=False)
        assert got_total == want_total, (account, raw, at)
        assert (case_counts.facets(query, scope, now=at, counted=got)
                == case_counts.facets(query, scope, now=at, counted=want)), (account, raw, at)
        if raw == "overdue=1" and account is readers[0]:
            overdue.add(got_total)
        compared += 1
    assert compared == len(readers) * len(QUERIES) * 2
    assert overdue == {1, 2}  # one past its deadline; two hours on, one not accepted in time
    # What the tally cannot know is counted from the cases.
    auditor = case_search.scope_of(db.session.get(User, readers[0]["id"]))
    for raw in ("opened_from=2026-07-01", "q=PT", "evidence=1",
                "town=town.02.v001", "point_code=PT-TALLY-1"):
        assert not case_tally.answers(_query(raw), auditor), raw
    villager = make_user((Role.RESPONDER, "town.02.v001"))
    assert not case_tally.answers(_query(""), case_search.scope_of(
        db.session.get(User, villager["id"])))


def test_reconcile_puts_a_damaged_tally_right(ctx, five):
    assert case_tally.reconcile() == 0
    db.session.execute(delete(CaseTally).where(CaseTally.state == "open"))
    db.session.add(CaseTally(state="closed", status="closed", level="red", scenario="gas", n=7))
    db.session.flush()
    assert _sums() != case_tally.expected()
    assert case_tally.reconcile() >= 2
    _same_as_cases()
    assert case_tally.reconcile() == 0


def test_the_check_is_a_command_too(app, five):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["cases", "tally"]).output.strip() == \
        "case tally: matches the cases"
    with app.app_context():
        db.session.execute(delete(CaseTally).where(CaseTally.scenario == "flood_typhoon"))
        db.session.commit()
    damaged = runner.invoke(args=["cases", "tally"])
    assert damaged.exit_code == 0 and "1 keys differed" in damaged.output
    with app.app_context():
        _same_as_cases()
