"""Cases keep working after a restart, whatever the process did before it.

The recipe that once failed every time: one process takes a stream with back-to-normal
readings (which start an event sub-process in some cases), then opens blue flood cases; after a
restart (specs compiled afresh) those cases are upgraded to red. Every one must be upgraded,
with no engine error, and replay the same as it ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Case
from app.services import case_engine, engine

FLOOD = ("flood_typhoon", "rainfall_1h_mm")


def _restart(app: Flask) -> None:
    with app.app_context():
        engine.forget_compiled()


def test_upgrades_after_a_restart_work_whatever_ran_before(
        app: Flask, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any) -> None:
    # The stream: cases open, some readings recover (back-to-normal sub-process runs).
    for n in range(4):
        code = point(f"RS-{n}", "flood_typhoon", town=f"town.{n + 1:02d}")
        assert send(*FLOOD, 40, code)["disposition"] == "opened"
        clock.advance(minutes=1)
        send(*FLOOD, 60, code)
        clock.advance(minutes=1)
        assert send(*FLOOD, 0, code)["disposition"] == "back_to_normal"
    # Then ten blue cases at new points, in the same process.
    upgraded = []
    for n in range(10):
        code = point(f"RU-{n}", "flood_typhoon", town=f"town.{n % 5 + 1:02d}")
        assert send(*FLOOD, 36, code)["level"] == "blue"
        upgraded.append(code)
    _restart(app)
    send(*FLOOD, 36, point("RN-0", "flood_typhoon"))
    clock.advance(minutes=5)
    for code in upgraded:
        assert send(*FLOOD, 130, code)["disposition"] == "upgraded"

    with app.app_context():
        rows = db.session.scalars(select(Case).where(Case.point_code.like("RU-%"))).all()
        assert len(rows) == 10
        for case in rows:
            assert case.error is None, (case.case_no, case.error)
            assert (case.level, case.highest_level) == ("red", "red")
            assert not case_engine.load(case).instance.has_errors
    _restart(app)
    with app.app_context():
        for case in db.session.scalars(select(Case)).all():
            case_engine.verify_replay(case)
