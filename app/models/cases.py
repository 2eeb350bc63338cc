"""Cases: one process instance of a handbook version per warning, its inbox projection,
its event history, and what people add to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.models.accounts import User
from app.models.base import Base, utcnow
from app.models.handbooks import HandbookVersion
from app.models.org import Department, PlatformNode

LEVEL_RANK = {"blue": 1, "yellow": 2, "orange": 3, "red": 4}


class Case(Base):
    __tablename__ = "warning_case"
    __table_args__ = (
        # One open case per (source, point, indicator): repeats group into it.
        Index("uq_case_open_dedup", "dedup_key", unique=True,
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
        Index("ix_case_next_timer", "next_timer_at"),
        # The board's figures (the case list's order and dates use the columns' own indexes).
        Index("ix_case_board", "status", "level", "scenario"),
        # The duty board reads only open real cases: their figures come from this index alone.
        Index("ix_case_open_board", "scenario", "level", "node_id", "loop_level",
              "owner_department_id", "stuck_since", "due_at",
              sqlite_where=text("status = 'open' AND is_test IS false"),
              postgresql_where=text("status = 'open' AND is_test IS false")),
        Index("ix_case_loop_level", "loop_level"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_no: Mapped[str] = mapped_column(String(40), unique=True)
    scenario: Mapped[str] = mapped_column(String(40), index=True)
    item_code: Mapped[str] = mapped_column(String(60))
    item_name: Mapped[str] = mapped_column(String(120))
    handbook_version_id: Mapped[int] = mapped_column(ForeignKey("handbook_version.id"))
    process_id: Mapped[str] = mapped_column(String(100))
    node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"), index=True)
    # Two ways into a case: the territory (town/village) and the scenario's own line.
    scope_path: Mapped[str] = mapped_column(String(200), index=True)
    scenario_path: Mapped[str] = mapped_column(String(200), index=True)
    owner_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"),
                                                            index=True)
    point_code: Mapped[str] = mapped_column(String(80))
    point_id: Mapped[int | None] = mapped_column(ForeignKey("monitoring_point.id"))
    dedup_key: Mapped[str] = mapped_column(String(240))
    # open / closed / false_alarm / error
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    outcome: Mapped[str | None] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(10))
    highest_level: Mapped[str] = mapped_column(String(10))
    loop_level: Mapped[str] = mapped_column(String(10), default="small")
    unit: Mapped[str] = mapped_column(String(20), default="")
    first_value: Mapped[float] = mapped_column(Float)
    last_value: Mapped[float] = mapped_column(Float)
    alert_count: Mapped[int] = mapped_column(default=1)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    accepted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    # The milestones the figures of Art 16/17 count, each with the deadline in force when it
    # was reached (a level change moves open deadlines, so the limit is that of the level at
    # the time): stamped by the step that reaches them, never recomputed.
    pushed_at: Mapped[datetime | None]
    accept_due_at: Mapped[datetime | None]
    arrived_at: Mapped[datetime | None]
    arrive_due_at: Mapped[datetime | None]
    feedback_at: Mapped[datetime | None]
    feedback_due_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    medium_loop_at: Mapped[datetime | None]
    big_loop_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    # Engine state without the spec; the optimistic counter guards concurrent writers.
    state: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    state_version: Mapped[int] = mapped_column(Integer, default=1)
    next_timer_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # Set while the engine cannot go on (a step failed): the case waits for a retry.
    stuck_since: Mapped[datetime | None] = mapped_column(index=True)
    stuck_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    failure: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A test run of a draft handbook in the designer's sandbox: never in inboxes, searches,
    # boards, reports or figures, and deletable.
    is_test: Mapped[bool] = mapped_column(default=False, server_default=false(), index=True)
    event_seq: Mapped[int] = mapped_column(default=0)
    last_event_hash: Mapped[str] = mapped_column(String(64), default="0" * 64)

    __mapper_args__ = {"version_id_col": state_version}

    handbook_version: Mapped[HandbookVersion] = relationship(lazy="raise")

    @property
    def scope_paths(self) -> tuple[str, ...]:
        return (self.scope_path, self.scenario_path)
    node: Mapped[PlatformNode] = relationship(lazy="joined")
    owner_department: Mapped[Department | None] = relationship(lazy="joined")

    # The highest level is never below the level, whoever moves it (an alert, a weather
    # warning, the engine step that records either): the one place levels change.
    @validates("level")
    def _lift_highest(self, _key: str, level: str) -> str:
        if LEVEL_RANK.get(level, 0) > LEVEL_RANK.get(self.highest_level or "", 0):
            self.highest_level = level
        return level

    @validates("highest_level")
    def _not_below_level(self, _key: str, highest: str) -> str:
        if self.level and LEVEL_RANK.get(self.level, 0) > LEVEL_RANK.get(highest, 0):
            return self.level
        return highest


class CaseTask(Base):
    """The inbox projection: one row per human task, kept in step with the engine state."""

    __tablename__ = "case_task"
    __table_args__ = (
        UniqueConstraint("case_id", "task_id", name="uq_case_task"),
        Index("ix_case_task_inbox", "status", "role", "scope_path"),
        Index("ix_case_task_inbox_scenario", "status", "role", "scenario_path"),
        Index("ix_case_task_claimed", "claimed_by_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Found by `uq_case_task`, which starts with it.
    case_id: Mapped[int] = mapped_column(ForeignKey("warning_case.id"))
    task_id: Mapped[str] = mapped_column(String(64))
    process_id: Mapped[str] = mapped_column(String(100))
    element_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    # One role, or for a department lane the roles that may take it ("business_admin,
    # department_head"), in the order of app.services.lanes.canonical_roles.
    role: Mapped[str] = mapped_column(String(100))
    # Set for a department lane (warning publication, big loop): the task belongs to people
    # holding one of its roles on a node of this department, wherever the case lies.
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    scope_path: Mapped[str] = mapped_column(String(200))
    scenario_path: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(10))
    # ready / completed / cancelled
    status: Mapped[str] = mapped_column(String(20), default="ready")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    claimed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    completed_at: Mapped[datetime | None]
    # Handed to a named person by a department head or business administrator (with why).
    delegated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    delegated_at: Mapped[datetime | None]
    delegation_reason: Mapped[str | None] = mapped_column(Text)

    case: Mapped[Case] = relationship(lazy="joined", innerjoin=True)

    @property
    def scope_paths(self) -> tuple[str, ...]:
        return (self.scope_path, self.scenario_path)
    claimed_by: Mapped[User | None] = relationship(foreign_keys=[claimed_by_id], lazy="joined")


class CaseEvent(Base):
    """Append-only history of a case, chained by hash: engine events, inputs, people's acts."""

    __tablename__ = "case_event"
    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_case_event_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Found by `uq_case_event_seq`, which starts with it.
    case_id: Mapped[int] = mapped_column(ForeignKey("warning_case.id"))
    seq: Mapped[int]
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(20))  # task / input / comment / attachment / ...
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor_name: Mapped[str | None] = mapped_column(String(60))
    version_hash: Mapped[str] = mapped_column(String(64))
    element_id: Mapped[str | None] = mapped_column(String(100))
    element_name: Mapped[str | None] = mapped_column(String(200))
    lane: Mapped[str | None] = mapped_column(String(100))
    old_state: Mapped[str | None] = mapped_column(String(20))
    new_state: Mapped[str | None] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class CaseComment(Base):
    __tablename__ = "case_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("warning_case.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined")


# The evidence types accepted (Art 9 feedback with photos), each with the extension the
# server gives its files; the type is detected from the bytes, never taken from the client.
ATTACHMENT_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp",
                         "application/pdf": ".pdf"}


class Attachment(Base):
    """Evidence: photos and documents, stored in the database with their digest.

    `content_type` is what the server detected; `filename` is the name the client gave,
    cleaned, for display only; the file itself goes out under `stored_name`.
    """

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("warning_case.id"), index=True)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    uploaded_by: Mapped[User] = relationship(lazy="joined")

    @property
    def stored_name(self) -> str:
        """The server's name for the file: its id and the extension of its detected type."""
        return f"evidence-{self.id}{ATTACHMENT_EXTENSIONS.get(self.content_type, '.bin')}"


class Notification(Base):
    """A reminder, escalation or notice addressed to one person."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_unread", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("warning_case.id"), index=True)
    # A version waiting for review, for notices to its reviewers.
    handbook_version_id: Mapped[int | None] = mapped_column(ForeignKey("handbook_version.id"))
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class OutboundMessage(Base):
    """A notification queued for an outbound channel (webhook), delivered by a job."""

    __tablename__ = "outbound_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class DataQualityIssue(Base):
    """A closed case that breaks a data-quality rule (Art 9), and how it was corrected."""

    __tablename__ = "data_quality_issue"
    __table_args__ = (UniqueConstraint("case_id", "rule", name="uq_dq_case_rule"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("warning_case.id"), index=True)
    rule: Mapped[str] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    correction: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class StaffingGap(Base):
    """A lane with nobody in scope at a node (a role lane of a scenario at a town, or a
    department lane at its department): found by the daily data-quality scan, resolved when
    someone holds the role there again."""

    __tablename__ = "staffing_gap"
    __table_args__ = (UniqueConstraint("process_key", "lane", "node_id",
                                       name="uq_staffing_gap"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The scenario whose handbook draws the lane, or the shared process (big loop, warning
    # publication) for a department lane.
    process_key: Mapped[str] = mapped_column(String(100), index=True)
    lane: Mapped[str] = mapped_column(String(100))  # a role, or a department lane's code
    roles: Mapped[str] = mapped_column(String(100))  # the roles that would fill it
    node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"), index=True)
    # The scenario's node for a role lane, so its department sees the gap too.
    scenario_path: Mapped[str | None] = mapped_column(String(200))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]

    node: Mapped[PlatformNode] = relationship(lazy="joined")


class CaseNumber(Base):
    """The last sequence number per scenario prefix and year (row-locked when taken)."""

    __tablename__ = "case_number"

    prefix: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last: Mapped[int] = mapped_column(default=0)
