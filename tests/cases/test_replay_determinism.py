"""Replay verdicts do not depend on what the process did before.

A generated day runs every handbook along random paths (answers drawn from each form's
options, upgrades, recoveries, timers). Every case is then verified four ways: each in a fresh
engine, all in id order in one engine, in reverse order, and after a restart. The verdicts must
be identical, and all consistent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseTask, Role
from app.services import case_engine, cases, engine, timers
from app.services.verification import verify_case
from cases_fixtures import ANSWERS, SCENARIOS, fill_form


def _random_answers(fields: Any, rng: random.Random, element_id: str) -> dict[str, Any]:
    given = dict(ANSWERS.get(element_id, {}))
    for f in fields:
        if f.options and rng.random() < 0.5:
            given[f.id] = rng.choice(f.options).id
        elif f.type == "boolean" and f.id not in given and rng.random() < 0.3:
            given[f.id] = rng.random() < 0.5
    if given.get("verdict") not in (None, "confirmed") and rng.random() < 0.7:
        given["verdict"] = "confirmed"  # keep most cases going past the assessment
    return fill_form(fields, given)


def _work(app: Flask, clock: Any, case_no: str, people: dict[str, int], rng: random.Random,
          steps: int) -> None:
    from app.models import User

    for _ in range(steps):
        with app.app_context():
            case = db.session.scalar(select(Case).where(Case.case_no == case_no))
            if case.status != "open" or case.stuck_since is not None:
                return
            task = db.session.scalar(select(CaseTask).where(
                CaseTask.case_id == case.id, CaseTask.status == "ready").order_by(CaseTask.id))
            if task is None:
                return
            fields = case_engine.load(case).compiled.form_fields(task.process_id,
                                                                 task.element_id)
            clock.advance(minutes=rng.randint(1, 20))
            try:
                cases.complete(db.session.get(User, people[task.role]), task.id,
                               _random_answers(fields, rng, task.element_id), now=clock())
            except Exception:  # a random answer a form refuses: try the plain one
                db.session.rollback()
                cases.complete(db.session.get(User, people[task.role]), task.id,
                               fill_form(fields, ANSWERS.get(task.element_id, {})), now=clock())
            db.session.commit()


def _verdicts(app: Flask, ids: list[int], *, fresh_each: bool) -> dict[int, tuple[Any, ...]]:
    found = {}
    with app.app_context():
        for case_id in ids:
            if fresh_each:
                engine.forget_compiled()
            verdict = verify_case(db.session.get(Case, case_id))
            found[case_id] = (verdict.chain_broken_at, verdict.replay_ok, verdict.problem)
            db.session.expunge_all()
    return found


def test_every_case_of_a_generated_day_replays_the_same_in_any_order(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any,
        make_user: Callable[..., dict[str, Any]]) -> None:
    from app.services.handbooks import published_version

    rng = random.Random(20261204)
    people = {role.value: make_user((role, "district"))["id"] for role in (
        Role.BUSINESS_ADMIN, Role.RESPONDER, Role.DEPARTMENT_HEAD, Role.LEADER_IN_CHARGE)}
    opened: list[str] = []
    for n, scenario in enumerate(SCENARIOS):
        with app.app_context():
            handbook = cases.handbook_of(published_version(scenario))
            item = handbook.warning_items[0]
        levels = list(item.thresholds)  # most severe first
        for k in range(2):
            code = point(f"DAY-{n}-{k}", scenario, town=f"town.{(n + k) % 36 + 1:02d}")
            start = levels[-1] if len(levels) > 1 else levels[0]
            outcome = send(scenario, item.indicator, item.thresholds[start], code)
            if outcome["case_no"] is None:
                continue
            opened.append(outcome["case_no"])
            clock.advance(minutes=rng.randint(1, 30))
            roll = rng.random()
            if roll < 0.4 and len(levels) > 1:
                send(scenario, item.indicator, item.thresholds[levels[0]], code)
            elif roll < 0.55:
                below = item.back_to_normal - 1 if item.direction == "above" \
                    else item.back_to_normal + 1
                send(scenario, item.indicator, below, code)
            _work(app, clock, outcome["case_no"], people, rng, rng.randint(0, 6))
        if n % 5 == 4:  # let time pass: reminders, escalations, tracking
            clock.advance(hours=rng.randint(1, 30))
            with app.app_context():
                for case_id in timers.due_case_ids(clock(), limit=500):
                    timers.fire_case(case_id, clock())
                    db.session.commit()

    with app.app_context():
        engine.forget_compiled()
        ids = list(db.session.scalars(select(Case.id).order_by(Case.id)))
    assert len(ids) >= 20
    fresh = _verdicts(app, ids, fresh_each=True)
    in_order = _verdicts(app, ids, fresh_each=False)
    reverse = _verdicts(app, list(reversed(ids)), fresh_each=False)
    with app.app_context():
        engine.forget_compiled()
    restarted = _verdicts(app, ids, fresh_each=False)
    assert fresh == in_order == reverse == restarted
    assert all(v == (None, True, None) for v in fresh.values()), \
        {k: v for k, v in fresh.items() if v != (None, True, None)}
