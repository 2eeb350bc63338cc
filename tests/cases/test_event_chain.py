"""The history's hash chain: the text each event is hashed from stays the one the chain has
always used, though the event's data is now encoded once for both hashing and storing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseEvent
from app.services import case_engine


def _historical(prev: str, seq: int, kind: str, at: datetime, actor: str | None,
                element_id: str | None, old_state: str | None, new_state: str | None,
                data: dict[str, Any]) -> str:
    """The chain's hash as it was first written: every field in one JSON object."""
    payload = {"seq": seq, "kind": kind, "at": at.isoformat(), "actor": actor,
               "element": element_id, "old": old_state, "new": new_state, "data": data}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256((prev + text).encode("utf-8")).hexdigest()


EVENTS = [
    (1, "opened", datetime(2026, 7, 26, 2, 0, tzinfo=UTC), "system", None, None, None,
     {"level": "yellow", "value": 30.0, "point": "B-00001", "version": 3}),
    (2, "task", datetime(2026, 7, 26, 2, 0, 0, 123456, tzinfo=UTC), None, "Activity_accept",
     "READY", "COMPLETED",
     {"task": "0f6b", "delta": {"updated": {"z": [1, {"b": 2, "a": 1}], "备注": "现场\"安全\""},
                                "deleted": []}, "process": "scenario_gas"}),
    (10**6, "input", datetime(2026, 7, 26, 10, 0, tzinfo=timezone(timedelta(hours=8))),
     "张三", None, None, None, {"big": 2**70, "small": -1e-300, "none": None, "t": True,
                                "nested": {"x": {"y": {}}, "list": []}, "\u2028": "\t\n"}),
    (3, "error", datetime(2026, 1, 1, tzinfo=UTC), None, "Gateway_1", None, None, {}),
]


@pytest.mark.parametrize("event", EVENTS, ids=[e[1] for e in EVENTS])
def test_an_events_hash_is_the_one_the_chain_has_always_used(event):
    prev = hashlib.sha256(b"prev").hexdigest()
    assert case_engine._digest(prev, *event) == _historical(prev, *event)


def test_stored_history_keeps_its_data_and_its_chain(app, open_case):
    """A case driven to its end by people: what is stored is the data hashed (sorted keys on
    PostgreSQL), it reads back as the same values, and the chain checks out from the stored
    rows."""
    case_no = open_case(stop_at=None)
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        rows = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                  .order_by(CaseEvent.seq)).all()
        assert len(rows) > 3
        assert case_engine.chain_intact(rows) is None
        opened = rows[0]
        assert opened.kind == "opened" and opened.data["level"] == case.level
        assert rows[-1].hash == case.last_event_hash
        assert {r.kind for r in rows} >= {"opened", "task", "input"}
        assert any(r.actor_id is not None for r in rows)  # people's steps are in it
        deltas = [r.data["delta"] for r in rows if r.kind == "task" and r.data.get("delta")]
        assert deltas and all(set(d) == {"updated", "deleted"} for d in deltas)
