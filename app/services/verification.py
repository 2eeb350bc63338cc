"""Is a case's record intact and does it replay to the stored state? One verdict per case,
for the auditor's replay page, `flask cases verify` and CI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseEvent
from app.services import case_engine
from workflows import WorkflowsError


@dataclass(frozen=True)
class Verdict:
    case_no: str
    chain_broken_at: int | None  # seq of the first event whose hash does not match
    replay_ok: bool
    problem: str | None  # what differs, or why the replay could not run
    error_type: str | None = None  # the engine's name for the problem
    finished: bool | None = None  # whether the replayed process has ended

    @property
    def ok(self) -> bool:
        return self.chain_broken_at is None and self.replay_ok

    def line(self) -> str:
        chain = "intact" if self.chain_broken_at is None else f"broken at {self.chain_broken_at}"
        replay = "consistent" if self.replay_ok else \
            f"INCONSISTENT ({self.error_type}: {self.problem})"
        return f"{self.case_no}\tchain {chain}\treplay {replay}"


def verify_case(case: Case, events: Sequence[CaseEvent] | None = None) -> Verdict:
    """`events`: the case's history in order, when the caller has read it already."""
    if events is None:
        events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                    .order_by(CaseEvent.seq)).all()
    broken = case_engine.chain_intact(events)
    try:
        instance = case_engine.verify_replay(case)
    except WorkflowsError as exc:  # ReplayMismatchError and the caller-mistake errors
        return Verdict(case.case_no, broken, False, str(exc), exc.__class__.__name__)
    return Verdict(case.case_no, broken, True, None, finished=instance.finished)


def case_ids(case_no: str | None = None) -> list[int]:
    query = select(Case.id).order_by(Case.id)
    if case_no:
        query = query.where(Case.case_no == case_no)
    return list(db.session.scalars(query))
