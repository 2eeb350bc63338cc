"""Every figure against an independent count from the cases' own event histories.

The cases are made by the real engine with the hard cases: a case crossing the month end, a
level upgrade by a reading mid-case (arrival judged by the new level's limit), a weather-warning
upgrade, late acceptance, a false alarm, a medium-loop escalation, a stuck case, an overdue open
case, and a test run (never counted). The expected figures are computed here from case_event
rows and the handbook's limits, never from the milestone columns the module reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseEvent, HandbookVersion, Role
from app.services import cases, figure_lists, figures, stuck
from app.services.handbook_data import limits_for
from app.services.handbook_schema import parse_duration
from cases_fixtures import PERCENTILES, as_test_copy, with_derived

JULY = figures.Period.month(2026, 7)
AUGUST = figures.Period.month(2026, 8)


@pytest.fixture
def people(make_user) -> dict[str, int]:
    return {
        "business_admin": make_user((Role.BUSINESS_ADMIN, "district"))["id"],
        "responder": make_user((Role.RESPONDER, "district"))["id"],
        "department_head": make_user((Role.DEPARTMENT_HEAD, "district"))["id"],
        "leader_in_charge": make_user((Role.LEADER_IN_CHARGE, "district"))["id"],
    }


def _at(local: str) -> datetime:
    return datetime.fromisoformat(local + "+08:00").astimezone(UTC)


@pytest.fixture
def month_of_cases(app, published, point, send, drive, people, clock, make_user):
    """Cases of July 2026 (and one into August) made through intake and the engine."""
    made: dict[str, str] = {}
    clock.now = _at("2026-07-03T09:00")
    made["prompt"] = send("gas", "ch4_lel", 30.0, point("F-GAS-1", "gas"))["case_no"]
    drive(made["prompt"], people)

    clock.now = _at("2026-07-05T09:00")
    made["late"] = send("gas", "ch4_lel", 30.0, point("F-GAS-2", "gas", "town.22"))["case_no"]
    drive(made["late"], people, stop_at="Activity_accept")
    clock.advance(hours=2)  # yellow accepts within 30 minutes
    drive(made["late"], people)

    # Upgraded by a reading after acceptance: arrival is judged by red's 30 minutes, not
    # yellow's 4 hours.
    clock.now = _at("2026-07-08T09:00")
    made["upgraded"] = send("gas", "ch4_lel", 30.0, point("F-GAS-3", "gas"))["case_no"]
    drive(made["upgraded"], people, stop_at="Activity_dispose")
    clock.advance(minutes=5)
    assert send("gas", "ch4_lel", 120.0, "F-GAS-3")["disposition"] == "upgraded"
    clock.advance(minutes=50)
    drive(made["upgraded"], people)

    clock.now = _at("2026-07-10T09:00")
    made["false"] = send("gas", "ch4_lel", 30.0, point("F-GAS-4", "gas"))["case_no"]
    drive(made["false"], people,
          answers={"Activity_assessment": {"verdict": "false_alarm", "major_risk": False}})

    clock.now = _at("2026-07-12T09:00")
    made["medium"] = send("gas", "ch4_lel", 30.0, point("F-GAS-5", "gas", "town.22"))["case_no"]
    drive(made["medium"], people,
          answers={"Activity_dispose": {"escalate": "medium", "escalate_reason": "多处"}})

    # A weather warning raises a flood case from yellow to orange while it waits to be
    # accepted; its acceptance counts against orange's limit.
    clock.now = _at("2026-07-14T09:00")
    made["weather"] = send("flood_typhoon", "rainfall_1h_mm", 55.0,
                           point("F-FLOOD-1", "flood_typhoon"))["case_no"]
    drive(made["weather"], people, stop_at="Activity_accept")
    _publish_rainstorm(app, clock, make_user)
    clock.advance(minutes=20)
    drive(made["weather"], people)

    # Open, accepted, never closed: overdue by the end of the month.
    clock.now = _at("2026-07-20T09:00")
    made["overdue"] = send("gas", "ch4_lel", 30.0, point("F-GAS-6", "gas"))["case_no"]
    drive(made["overdue"], people, stop_at="Activity_dispose")

    clock.now = _at("2026-07-22T09:00")
    made["stuck"] = send("gas", "ch4_lel", 30.0, point("F-GAS-7", "gas", "town.22"))["case_no"]
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == made["stuck"]))
        stuck.mark_state_failure(case, RuntimeError("state unreadable"), now=clock())
        db.session.commit()

    # Opened on the last evening of July, closed in the first minutes of August (local).
    clock.now = _at("2026-07-31T23:50")
    made["month_end"] = send("gas", "ch4_lel", 30.0, point("F-GAS-9", "gas"))["case_no"]
    clock.advance(minutes=5)
    drive(made["month_end"], people)
    # A test run of a draft, written with its flag, standing where a closed July case
    # stands: counted nowhere.
    with app.app_context():
        made["test"] = as_test_copy(made["weather"], "TEST-2026-000001")
        db.session.commit()
    clock.now = _at("2026-08-03T09:00")
    return made


def _publish_rainstorm(app, clock, make_user) -> None:
    from app.models import CaseTask, User
    from app.services import publications
    from cases_fixtures import fill_form

    drafter = make_user((Role.BUSINESS_ADMIN, "industry.meteorology"))["id"]
    verifier = make_user((Role.DEPARTMENT_HEAD, "industry.emergency"))["id"]
    given = {"warning_type": "rainstorm", "level": "orange", "area": "district_wide",
             "content": "预计未来3小时浦东全区有暴雨。",
             "effective_at": "2026-07-14T09:00:00+08:00",
             "effective_until": "2026-07-14T18:00:00+08:00"}
    with app.app_context():
        publication = publications.start(db.session.get(User, drafter), now=clock())
        db.session.commit()
        for user, answers in ((drafter, given), (verifier, {"verified": "approve"})):
            task = db.session.scalar(select(CaseTask).where(
                CaseTask.case_id == publication.id, CaseTask.status == "ready"))
            fields = cases.case_engine.load(db.session.get(Case, publication.id)) \
                .compiled.form_fields(task.process_id, task.element_id)
            cases.complete(db.session.get(User, user), task.id, fill_form(fields, answers),
                           now=clock())
            db.session.commit()


# ---------------------------------------------------------------------------------------------
# The independent count


def _history(case: Case) -> dict[str, Any]:
    """What the event chain says about a case: times of each step and the deadlines the
    handbook gave for the level in force when each step was done."""
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                .order_by(CaseEvent.seq)).all()
    opened = next(e for e in events if e.kind == "opened")
    levels = [(opened.at, opened.data["level"])]
    for e in events:
        if e.kind == "input" and e.data.get("kind") == "update_data" \
                and "level" in e.data.get("values", {}):
            levels.append((e.at, e.data["values"]["level"]))

    def level_at(moment: datetime) -> str:
        return [lv for at, lv in levels if at <= moment][-1]

    def first(element: str, state: str) -> datetime | None:
        return next((e.at for e in events if e.kind == "task" and e.element_id == element
                     and e.new_state == state), None)

    version = db.session.get(HandbookVersion, case.handbook_version_id)
    handbook = cases.handbook_of(version)

    def deadline(element: str, limit: str) -> tuple[datetime | None, datetime | None]:
        ready, done = first(element, "READY"), first(element, "COMPLETED")
        if ready is None or done is None:
            return done, None
        limits = limits_for(handbook, level_at(done))
        value = getattr(limits, limit) or limits.due
        return done, ready + parse_duration(value)

    accepted, accept_due = deadline("Activity_accept", "accept")
    arrived, arrive_due = deadline("Activity_dispose", "on_site")
    feedback, feedback_due = deadline("Activity_feedback", "feedback")
    end = case.closed_at
    final = level_at(end or datetime.max.replace(tzinfo=UTC))
    return {
        "opened": opened.at, "pushed": first("Activity_accept", "READY"),
        "accepted": accepted, "accept_due": accept_due, "arrived": arrived,
        "arrive_due": arrive_due, "feedback": feedback, "feedback_due": feedback_due,
        "cancelled": first("Activity_cancel_warning", "COMPLETED"),
        "medium": first("Activity_medium_loop", "READY"),
        "due": opened.at + parse_duration(limits_for(handbook, final).due),
        "status": case.status, "closed": end,
        "stuck": any(e.kind == "error" for e in events) and case.stuck_since is not None,
    }


def _inside(moment: datetime | None, period: figures.Period) -> bool:
    return moment is not None and period.start_utc <= moment < period.end_utc


def _expected(facts: list[dict[str, Any]], period: figures.Period, now: datetime
              ) -> dict[str, Any]:
    as_of = min(period.end_utc, now)

    def n(test: Any) -> int:
        return sum(1 for f in facts if test(f))

    pushed = [f for f in facts if _inside(f["pushed"], period)]
    closed = [f for f in facts if f["status"] == "closed" and _inside(f["closed"], period)]
    accepted = [f for f in facts if _inside(f["accepted"], period)]
    open_then = [f for f in facts if f["opened"] < as_of
                 and (f["closed"] is None or f["closed"] > as_of)]
    due = [f for f in facts if _inside(f["due"], period) and f["status"] != "false_alarm"]
    counts = {
        "opened": n(lambda f: _inside(f["opened"], period)),
        "pushed": len(pushed),
        "accepted": sum(1 for f in pushed if f["accepted"] is not None),
        "accepted_on_time": sum(1 for f in pushed if f["accepted"] is not None
                                and f["accepted"] <= f["accept_due"]),
        "arrived": n(lambda f: _inside(f["arrived"], period)),
        "arrived_on_time": n(lambda f: _inside(f["arrived"], period)
                             and f["arrived"] <= f["arrive_due"]),
        "feedback": n(lambda f: _inside(f["feedback"], period)),
        "feedback_on_time": n(lambda f: _inside(f["feedback"], period)
                              and f["feedback"] <= f["feedback_due"]),
        "due": len(due),
        "closed_on_time": sum(1 for f in due if f["status"] == "closed"
                              and f["closed"] <= f["due"]),
        "closed_of_pushed": sum(1 for f in pushed if f["status"] == "closed"),
        "closed": len(closed),
        "cancelled": n(lambda f: _inside(f["cancelled"], period)),
        "false_alarms": n(lambda f: f["status"] == "false_alarm"
                          and _inside(f["closed"], period)),
        "false_alarms_of_opened": n(lambda f: f["status"] == "false_alarm"
                                    and _inside(f["opened"], period)),
        "medium_loops": n(lambda f: _inside(f["medium"], period)),
        "big_loops": 0,
        "open_at_end": len(open_then),
        "overdue": sum(1 for f in open_then if f["due"] < as_of),
        "stuck": n(lambda f: f["stuck"] and _inside(f["opened"], period)),
    }
    to_accept = [(f["accepted"] - f["opened"]).total_seconds() for f in accepted]
    to_close = [(f["closed"] - f["opened"]).total_seconds() for f in closed]
    return with_derived(counts, to_accept, to_close)


def _same(got: dict[str, Any], want: dict[str, Any], *, breakdown: bool = False) -> None:
    """Every figure equal; a breakdown row leaves percentiles to the totals (None)."""
    for key, value in want.items():
        if breakdown and key in PERCENTILES:
            assert got[key] is None, key
            continue
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=1e-3), key
        else:
            assert got[key] == value, (key, got[key], value)


def test_every_figure_matches_the_event_histories(app, month_of_cases, clock):
    now = clock()
    with app.app_context():
        facts = [_history(c) for c in db.session.scalars(
            select(Case).where(figures.counted()))]
        district = figures.scope_for("district")
        for period in (JULY, AUGUST):
            got = figures.totals(district, period, now=now)
            want = _expected(facts, period, now)
            _same(got, want)
        july = figures.totals(district, JULY, now=now)
        # The hard cases are really in the data, so the comparison above means something.
        assert july["false_alarms"] == 1 and july["medium_loops"] == 1
        assert july["overdue"] >= 1 and july["stuck"] == 1
        assert 0 < july["accept_on_time_rate"] < 1
        assert 0 < july["arrive_on_time_rate"] < 1
        august = figures.totals(district, AUGUST, now=now)
        assert august["opened"] == 0 and august["closed"] == 1
        # The trend puts each case on its local day: the month-end case opened on 31 July
        # and closed on 1 August.
        days = {t["bucket"]: t for t in figure_lists.trend(district, JULY)}
        assert sum(t["opened"] for t in days.values()) == july["opened"]
        assert sum(t["closed"] for t in days.values()) == july["closed"]
        assert sum(t["false_alarms"] for t in days.values()) == july["false_alarms"]
        assert days["2026-07-31"]["opened"] == 1 and days["2026-07-31"]["closed"] == 0
        assert [t["bucket"] for t in figure_lists.trend(district, AUGUST)] == ["2026-08-01"]
        # A year is trended per local month: the same cases, July's and August's months.
        months = {t["bucket"]: t for t in figure_lists.trend(district, figures.Period.year(2026))}
        assert set(months) == {"2026-07", "2026-08"}
        assert months["2026-07"]["opened"] == july["opened"]
        assert months["2026-08"]["closed"] == august["closed"]
    # One set of cases (the engine makes them slowly) for every check below.
    _upgrade_and_weather_warning_move_the_limits(app, month_of_cases)
    _breakdowns_match_per_town_and_scenario(app, month_of_cases, now)
    _test_runs_count_nowhere(app, now)


def _upgrade_and_weather_warning_move_the_limits(app, month_of_cases) -> None:
    with app.app_context():
        upgraded = db.session.scalar(select(Case).where(
            Case.case_no == month_of_cases["upgraded"]))
        weather = db.session.scalar(select(Case).where(
            Case.case_no == month_of_cases["weather"]))
        assert (upgraded.highest_level, weather.highest_level) == ("red", "orange")
        # 55 minutes to arrive: on time for yellow (4 h), late for red (30 min).
        assert upgraded.arrived_at > upgraded.arrive_due_at
        # The on-site deadline counts from the dispose task, created at the acceptance.
        assert upgraded.arrive_due_at - upgraded.accepted_at == timedelta(minutes=30)
        assert upgraded.arrive_due_at == _history(upgraded)["arrive_due"]
        facts = _history(weather)
        assert weather.accept_due_at == facts["accept_due"]


def _breakdowns_match_per_town_and_scenario(app, month_of_cases, now) -> None:
    with app.app_context():
        district = figures.scope_for("district")
        rows = {r.group.code: r.values for r in figures.breakdown(district, JULY, "town",
                                                                  now=now)}
        assert set(rows) == {"town.02", "town.22"}
        for code, values in rows.items():
            facts = [_history(c) for c in db.session.scalars(
                select(Case).where(figures.counted())) if c.node.code == code]
            _same(values, _expected(facts, JULY, now), breakdown=True)
        by_scenario = {r.group.code: r.values["opened"]
                       for r in figures.breakdown(district, JULY, "scenario", now=now)}
        assert by_scenario == {"gas": 8, "flood_typhoon": 1}
        from app.services import org

        def industry_of(case: Case) -> str | None:
            node = org.node_by_code(f"scenario.{case.scenario}")
            return db.session.get(type(node), node.parent_id).code

        for by, key_of in (("department", lambda c: c.owner_department.code),
                           ("industry", industry_of)):
            found = {r.group.code: r.values
                     for r in figures.breakdown(district, JULY, by, now=now)}
            real = db.session.scalars(select(Case).where(figures.counted())).all()
            assert set(found) == {key_of(c) for c in real}, by
            for code, values in found.items():
                _same(values, _expected([_history(c) for c in real if key_of(c) == code],
                                        JULY, now), breakdown=True)
        # A town's own scope counts what its row counts.
        town = figures.scope_for("town.22")
        town_totals = figures.totals(town, JULY, now=now)
        _same(town_totals, {k: v for k, v in rows["town.22"].items() if k not in PERCENTILES})
        facts = [_history(c) for c in db.session.scalars(select(Case).where(
            figures.counted())) if c.node.code == "town.22"]
        _same(town_totals, _expected(facts, JULY, now))


def _test_runs_count_nowhere(app, now) -> None:
    with app.app_context():
        district = figures.scope_for("district")
        july = figures.totals(district, JULY, now=now)
        floods = db.session.scalars(select(Case).where(
            Case.scenario == "flood_typhoon")).all()
        assert len(floods) == 2  # the real flood case and the test run standing where it does
        assert july["opened"] == 9  # eight gas and one flood case: the test run is not here
        assert figure_lists.levels(district, JULY).get("red") == 1  # the upgraded one
        alerts = figure_lists.alerts(district, JULY)["scenario"]
        assert alerts["gas"] == 9  # the upgrade reading counts; the test run's alert does not
