"""A batch's new warnings open their cases together (`case_opening.open_cases`): each case is the
case its alert would have opened alone (history chain, tasks, notices, replay), the batch's
order holds, and on PostgreSQL each table is written once per batch."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select

from app.extensions import db
from app.models import Alert, ApiKey, Case, CaseEvent, CaseTask, Notification
from app.services import case_engine
from app.services.case_opening import SEND_EVERY
from app.services.intake import AlertIn, ingest
from app.services.intake_batches import ingest_many


def _history(case: Case) -> list[tuple[Any, ...]]:
    """A case's history without what differs between two cases (numbers, values, hashes)."""
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                .order_by(CaseEvent.seq)).all()
    return [(e.seq, e.kind, e.element_id, e.old_state, e.new_state, e.actor_name)
            for e in events]


def _events(case: Case) -> list[CaseEvent]:
    return list(db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                   .order_by(CaseEvent.seq)))


def _tasks(case: Case) -> list[tuple[Any, ...]]:
    rows = db.session.scalars(select(CaseTask).where(CaseTask.case_id == case.id)
                              .order_by(CaseTask.element_id)).all()
    return [(t.element_id, t.role, t.status, t.scope_path, t.scenario_path, t.level,
             t.due_at - case.opened_at if t.due_at else None) for t in rows]


def _notices(case: Case) -> list[tuple[Any, ...]]:
    rows = db.session.execute(select(Notification.user_id, Notification.kind).where(
        Notification.case_id == case.id).order_by(Notification.user_id)).all()
    return [tuple(r) for r in rows]


def test_a_batch_of_new_warnings_opens_each_case_as_its_alert_alone_would(
        app, published, source_key, point, clock):
    for n in range(1, 6):
        point(f"GAS-MH-000{n}", "gas")
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        alone = ingest(key, AlertIn("gas", "ch4_lel", "GAS-MH-0005", 30.0, clock()),
                       now=clock())
        db.session.commit()
        key = db.session.scalar(select(ApiKey))
        outcomes = ingest_many(key, [
            AlertIn("gas", "ch4_lel", "GAS-MH-0001", 30.0, clock()),
            AlertIn("gas", "ch4_lel", "GAS-MH-0002", 30.0, clock(), idempotency_key="s-2"),
            # a repeat of the case the first alert opens, in the same batch
            AlertIn("gas", "ch4_lel", "GAS-MH-0001", 29.0, clock()),
            AlertIn("gas", "ch4_lel", "GAS-MH-0003", 1.0, clock()),  # below threshold
            AlertIn("gas", "ch4_lel", "GAS-UNKNOWN-9", 30.0, clock()),  # unregistered point
            AlertIn("gas", "ch4_lel", "GAS-MH-0004", 30.0, clock()),
            AlertIn("gas", "ch4_lel", "GAS-MH-0002", 31.0, clock(), idempotency_key="s-2"),
        ], now=clock())
        db.session.commit()
        assert [(o.disposition, o.replayed) for o in outcomes] == [
            ("opened", False), ("opened", False), ("grouped", False),
            ("below_threshold", False), ("opened", False), ("opened", False),
            ("opened", True)]
        assert outcomes[2].case_no == outcomes[0].case_no
        assert outcomes[6].alert_id == outcomes[1].alert_id
        assert outcomes[4].unknown_point and not outcomes[0].unknown_point
        # Stored in the order they came, numbered in the order they opened.
        ids = [o.alert_id for o in outcomes[:6]]
        assert ids == sorted(ids)
        numbers = [int(o.case_no.rsplit("-", 1)[1]) for o in outcomes if o.disposition ==
                   "opened" and not o.replayed]
        first = int(alone.case_no.rsplit("-", 1)[1])
        assert numbers == [first + 1, first + 2, first + 3, first + 4]

        reference = db.session.scalar(select(Case).where(Case.case_no == alone.case_no))
        for outcome in (outcomes[0], outcomes[1], outcomes[5]):
            case = db.session.scalar(select(Case).where(Case.case_no == outcome.case_no))
            assert case is not None and case.status == "open"
            assert _history(case) == _history(reference)
            assert case_engine.chain_intact(_events(case)) is None
            assert case.event_seq == len(_events(case))
            assert case.last_event_hash == _events(case)[-1].hash
            assert _tasks(case) == _tasks(reference)
            assert _notices(case) == _notices(reference) != []
            assert (case.pushed_at, case.due_at, case.next_timer_at, case.level,
                    case.loop_level) == (reference.pushed_at, reference.due_at,
                                         reference.next_timer_at, reference.level,
                                         reference.loop_level)
            assert case.next_timer_at is not None
            case_engine.verify_replay(case)  # the stored state is the recorded inputs' state
        grouped = db.session.scalar(select(Case).where(Case.case_no == outcomes[0].case_no))
        assert grouped.alert_count == 2 and grouped.last_value == 29.0
        unknown = db.session.scalar(select(Case).where(Case.case_no == outcomes[4].case_no))
        assert unknown.point_id is None and unknown.scope_path == unknown.scenario_path
        assert db.session.scalar(select(func.count()).select_from(Alert)) == 7


def test_a_batch_of_new_warnings_is_written_once_per_table(app, published, source_key, point,
                                                            clock):
    for n in range(10, 40):
        point(f"GAS-MH-00{n}", "gas")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    def storm(points: range) -> list[str]:
        key = db.session.scalar(select(ApiKey))
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            outcomes = ingest_many(key, [AlertIn("gas", "ch4_lel", f"GAS-MH-00{n}", 30.0,
                                                 clock()) for n in points], now=clock())
            db.session.commit()
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert [o.disposition for o in outcomes] == ["opened"] * len(points)
        assert len({o.case_no for o in outcomes}) == len(points)
        return list(statements)

    with app.app_context():
        engine = db.engine
        few = storm(range(10, 15))
        many = storm(range(15, 40))
        assert db.session.scalar(select(func.count()).select_from(CaseTask)) == 30

    def writes(table: str) -> int:
        return len([s for s in many if s.lstrip().upper().startswith("INSERT")
                    and f"INTO {table} " in s])

    if engine.dialect.name == "postgresql":
        # The cases and their histories go out every SEND_EVERY cases, while the next ones
        # start.
        parts = -(-25 // SEND_EVERY)
        assert parts > 1, "the test needs a batch sent in parts"
        assert {table: writes(table) for table in (
            "warning_case", "case_event", "case_task", "notification", "alert")} == {
            "warning_case": parts, "case_event": parts, "case_task": 1, "notification": 1,
            "alert": 1}
        # Five times the cases, no more statements than the parts they are sent in.
        assert len(many) <= len(few) + 2 * (parts - 1), "\n".join(s[:90] for s in many)


def test_a_state_holding_any_text_is_written_as_the_engine_encoded_it(app, published,
                                                                       source_key, point,
                                                                       clock):
    """A state's text goes into its row as written: an escaped lone surrogate (which a script
    may leave in its data) included, which PostgreSQL refuses inside a JSON document."""
    from app.services import row_batches

    point("GAS-MH-0001", "gas")
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        opened = ingest(key, AlertIn("gas", "ch4_lel", "GAS-MH-0001", 30.0, clock()),
                        now=clock())
        db.session.commit()
        template = db.session.scalar(select(Case).where(Case.case_no == opened.case_no))
        columns = {c.key: getattr(template, c.key) for c in sa.inspect(Case).column_attrs
                   if c.key not in ("id", "state")}
        state_text = '{"note": "a\ud800", "n": 1}'  # as the engine writes it, unescaped
        copy = Case(**{**columns, "case_no": "RQ-COPY-1", "dedup_key": "copy|1",
                       "status": "closed"})
        row_batches.insert_new([copy], encoded={"state": [state_text]})
        db.session.commit()
        db.session.expire_all()
        stored = db.session.scalar(select(Case).where(Case.case_no == "RQ-COPY-1"))
        assert stored.id != template.id and stored.state == {"note": "a\ud800", "n": 1}
        assert stored.opened_at == template.opened_at and stored.node_id == template.node_id
