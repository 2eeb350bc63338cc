"""The report's figures against a straightforward per-case computation on generated cases.

Several hundred cases are written directly with the milestones their steps would stamp, piled
on the hard places: openings, closures and deadlines a second either side of local month ends
(Asia/Shanghai midnight is 16:00 UTC the day before), false alarms, cancellations, escalations,
stuck cases, cases open past their deadline, and test runs (never counted). Every figure of the
totals, of every breakdown and of the levels and trend is recomputed here case by case in Python
and must be equal.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from app.extensions import db
from app.models import Case, HandbookVersion, NodeKind, PlatformNode
from app.services import figures, reports
from cases_fixtures import PERCENTILES, with_derived

JULY = figures.Period.month(2026, 7)
NOW = datetime(2026, 8, 20, 4, 0, tzinfo=UTC)
LEVELS = ("red", "orange", "yellow", "blue")
# Local month ends around July 2026 (and the same months a year before), in UTC.
EDGES = [datetime(y, m, 1, tzinfo=UTC) - timedelta(hours=8)
         for y in (2025, 2026) for m in (6, 7, 8)]


def _moment(rng: random.Random) -> datetime:
    """Mostly a second or so either side of a local month end, else anywhere around."""
    if rng.random() < 0.5:
        return rng.choice(EDGES) + timedelta(seconds=rng.choice((-61, -1, 0, 1, 59)))
    return EDGES[0] + timedelta(seconds=rng.randrange(int((EDGES[-1] - EDGES[0])
                                                          .total_seconds()) + 86400 * 40))


def _after(rng: random.Random, moment: datetime, edge_bias: bool = True) -> datetime:
    """A later moment, often just across the next local month end."""
    if edge_bias and rng.random() < 0.3:
        later = [e for e in EDGES if e > moment]
        if later:
            return later[0] + timedelta(seconds=rng.choice((-1, 0, 1)))
    return moment + timedelta(seconds=rng.randrange(60, 86400 * 3))


def _rows(places: list[PlatformNode], scenarios: list[tuple[PlatformNode, HandbookVersion]],
          count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for n in range(1, count + 1):
        scenario, version = scenarios[rng.randrange(len(scenarios))]
        place = places[rng.randrange(len(places))]
        level = LEVELS[rng.randrange(4)]
        opened = _moment(rng)
        row: dict[str, Any] = dict.fromkeys(
            ("pushed_at", "accepted_at", "accept_due_at", "arrived_at", "arrive_due_at",
             "feedback_at", "feedback_due_at", "cancelled_at", "medium_loop_at",
             "big_loop_at", "closed_at", "outcome", "stuck_since"))
        row.update(
            case_no=f"GEN-{n:05d}", scenario=scenario.code.removeprefix("scenario."),
            item_code="GEN", item_name="生成", handbook_version_id=version.id,
            process_id=version.process_id, node_id=place.id, scope_path=place.path,
            scenario_path=scenario.path, owner_department_id=scenario.department_id,
            point_code=f"G-{n}", dedup_key=f"iot|G-{n}|x", level=level,
            highest_level=LEVELS[max(0, LEVELS.index(level) - rng.randrange(2))],
            loop_level="small", unit="", first_value=1.0, last_value=1.0, alert_count=1,
            first_seen=opened, last_seen=opened, opened_at=opened, state={},
            state_version=1, is_test=rng.random() < 0.08, event_seq=0,
            last_event_hash="0" * 64, status="open",
            due_at=_after(rng, opened) if rng.random() < 0.95 else None)
        fate = rng.random()
        if fate < 0.15:  # a false alarm at assessment, closed at once
            row.update(status="false_alarm", outcome="false_alarm",
                       closed_at=_after(rng, opened))
            rows.append(row)
            continue
        pushed = opened + timedelta(seconds=rng.randrange(0, 600))
        row.update(pushed_at=pushed,
                   accept_due_at=pushed + timedelta(minutes=rng.choice((5, 30))))
        if rng.random() < 0.9:
            accepted = _after(rng, pushed, edge_bias=rng.random() < 0.5)
            row.update(accepted_at=accepted, arrive_due_at=accepted + timedelta(hours=1))
            if rng.random() < 0.85:
                arrived = _after(rng, accepted)
                row.update(arrived_at=arrived, feedback_due_at=arrived + timedelta(hours=4))
                if rng.random() < 0.2:
                    row.update(medium_loop_at=arrived, loop_level="medium")
                elif rng.random() < 0.05:
                    row.update(big_loop_at=arrived, loop_level="big")
                if rng.random() < 0.8:
                    row["feedback_at"] = _after(rng, arrived)
        if rng.random() < 0.1:
            row["cancelled_at"] = _after(rng, pushed)
        if fate < 0.8 and row["feedback_at"] is not None:
            row.update(status="closed", outcome="closed",
                       closed_at=_after(rng, row["feedback_at"]))
        elif fate < 0.85:
            row["stuck_since"] = _after(rng, opened)
        rows.append(row)
    return rows


def _inside(moment: datetime | None, period: figures.Period) -> bool:
    return moment is not None and period.start_utc <= moment < period.end_utc


def _by_hand(cases: list[Case], period: figures.Period, now: datetime) -> dict[str, Any]:
    """Every figure, counting case by case."""
    as_of = min(period.end_utc, now)
    c: dict[str, Any] = dict.fromkeys(
        ("opened", "pushed", "accepted", "accepted_on_time", "arrived", "arrived_on_time",
         "feedback", "feedback_on_time", "due", "closed_on_time", "closed_of_pushed",
         "closed", "cancelled", "false_alarms", "false_alarms_of_opened", "medium_loops",
         "big_loops", "open_at_end", "overdue", "stuck"), 0)
    to_accept: list[float] = []
    to_close: list[float] = []
    for x in cases:
        closed_in = x.status == "closed" and _inside(x.closed_at, period)
        pushed_in = _inside(x.pushed_at, period)
        c["opened"] += _inside(x.opened_at, period)
        c["pushed"] += pushed_in
        c["accepted"] += pushed_in and x.accepted_at is not None
        c["accepted_on_time"] += (pushed_in and x.accepted_at is not None
                                  and x.accepted_at <= x.accept_due_at)
        if _inside(x.arrived_at, period):
            c["arrived"] += 1
            c["arrived_on_time"] += x.arrived_at <= x.arrive_due_at
        if _inside(x.feedback_at, period):
            c["feedback"] += 1
            c["feedback_on_time"] += x.feedback_at <= x.feedback_due_at
        if _inside(x.due_at, period) and x.status != "false_alarm":
            c["due"] += 1
            c["closed_on_time"] += x.status == "closed" and x.closed_at <= x.due_at
        c["closed_of_pushed"] += pushed_in and x.status == "closed"
        c["closed"] += closed_in
        c["cancelled"] += _inside(x.cancelled_at, period)
        c["false_alarms"] += x.status == "false_alarm" and _inside(x.closed_at, period)
        c["false_alarms_of_opened"] += (x.status == "false_alarm"
                                        and _inside(x.opened_at, period))
        c["medium_loops"] += _inside(x.medium_loop_at, period)
        c["big_loops"] += _inside(x.big_loop_at, period)
        if x.opened_at < as_of and (x.closed_at is None or x.closed_at > as_of):
            c["open_at_end"] += 1
            c["overdue"] += x.due_at is not None and x.due_at < as_of
        c["stuck"] += x.stuck_since is not None and _inside(x.opened_at, period)
        if _inside(x.accepted_at, period):
            to_accept.append((x.accepted_at - x.opened_at).total_seconds())
        if closed_in:
            to_close.append((x.closed_at - x.opened_at).total_seconds())
    return with_derived(c, to_accept, to_close)


def _same(got: dict[str, Any], want: dict[str, Any], where: str, *,
          percentiles: bool = True) -> None:
    for key, value in want.items():
        if key in PERCENTILES and not percentiles:
            assert got[key] is None, (where, key)
        elif isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=1e-3), (where, key)
        else:
            assert got[key] == value, (where, key, got[key], value)


@pytest.fixture
def generated(app, published) -> None:
    with app.app_context():
        versions = {v.handbook_key: v for v in db.session.scalars(select(HandbookVersion))}
        scenarios = [(n, versions[n.code.removeprefix("scenario.")])
                     for n in db.session.scalars(select(PlatformNode).where(
                         PlatformNode.kind == NodeKind.SCENARIO).order_by(PlatformNode.id))
                     if n.code.removeprefix("scenario.") in versions][:6]
        places = list(db.session.scalars(select(PlatformNode).where(
            PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.VILLAGE)))
            .order_by(PlatformNode.id)))[:12]
        db.session.execute(insert(Case), _rows(places, scenarios, 600))
        db.session.commit()


def _group_of(by: str, case: Case, nodes: dict[int, PlatformNode]) -> Any:
    if by == "scenario":
        return case.scenario
    if by == "department":
        return case.owner_department.code if case.owner_department else None
    if by == "level":
        return case.highest_level
    if by == "industry":
        scenario = next(n for n in nodes.values() if n.code == f"scenario.{case.scenario}")
        parent = nodes.get(scenario.parent_id or 0)
        return parent.code if parent is not None and parent.kind == NodeKind.INDUSTRY else None
    node = nodes[case.node_id]
    if node.kind == NodeKind.VILLAGE:
        return nodes[node.parent_id or 0].code
    return node.code if node.kind == NodeKind.TOWN else None


def test_report_figures_match_a_per_case_count(app, generated):
    with app.app_context():
        real = db.session.scalars(select(Case).where(figures.counted())).all()
        assert len(real) < db.session.query(Case).count()  # test runs are there, left out
        nodes = {n.id: n for n in db.session.scalars(select(PlatformNode))}
        district = figures.scope_for("district")
        for period in (JULY, figures.Period.year(2026), figures.Period.month(2025, 7)):
            content = reports.compose(district, period, now=NOW)
            for name, p in (("current", period), ("previous", period.previous()),
                            ("last_year", period.same_last_year())):
                _same(content[name], _by_hand(real, p, NOW), f"{period.code} {name}")
            july = _by_hand(real, period, NOW)
            assert july["opened"] and july["false_alarms"] and july["cancelled"]
            assert july["overdue"] and july["medium_loops"] and july["stuck"]
            for by, rows in content["breakdowns"].items():
                got = {r["code"]: r["values"] for r in rows}
                keys = {_group_of(by, x, nodes) for x in real} - {None}
                for key in set(got) | keys:
                    want = _by_hand([x for x in real if _group_of(by, x, nodes) == key],
                                    period, NOW)
                    if key not in got:  # a group with nothing in the period
                        assert not any(v for k, v in want.items()
                                       if k in figures.FIGURES_BY_KEY
                                       and figures.FIGURES_BY_KEY[k].kind == "count"), key
                        continue
                    _same(got[key], want, f"{period.code} {by} {key}", percentiles=False)
            levels = {lv: sum(1 for x in real if x.highest_level == lv
                              and _inside(x.opened_at, period)) for lv in LEVELS}
            assert content["levels"] == {lv: n for lv, n in levels.items() if n}
            trend = content["trend"]
            assert sum(t["opened"] for t in trend) == july["opened"]
            assert sum(t["closed"] for t in trend) == july["closed"]
            assert sum(t["false_alarms"] for t in trend) == july["false_alarms"]
        # Narrower scopes count the same way.
        for code in ("town.02", "department:" + real[0].owner_department.code):
            scope = figures.scope_for(code)
            wanted = [x for x in real if (x.owner_department_id == scope.department_id
                                          if scope.kind == "department"
                                          else x.scope_path.startswith(scope.path))]
            _same(figures.totals(scope, JULY, now=NOW), _by_hand(wanted, JULY, NOW), code)
