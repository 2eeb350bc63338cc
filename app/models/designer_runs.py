"""What the process designer keeps beside a version: test runs of a draft in the sandbox,
batches that move running cases to a newer version, and reviewers' confirmations of the
inferred values of a version's handbook data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.accounts import User
from app.models.base import Base, utcnow
from app.models.cases import Case
from app.models.handbooks import HandbookVersion


class HandbookTestRun(Base):
    """A test case (`Case.is_test`) started on a version from a sample alert, with its own
    virtual clock: moving the clock fires the case's timers, never the real scheduler.

    `content_hash` pins the files the run started on: once the draft is saved with other files,
    the test case's engine state no longer matches them and the run is kept as it stands
    (readable, deletable) but moves no further."""

    __tablename__ = "handbook_test_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("handbook_version.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("warning_case.id"), unique=True)
    item_code: Mapped[str] = mapped_column(String(60))
    level: Mapped[str] = mapped_column(String(10))
    value: Mapped[float]
    clock_at: Mapped[datetime]
    content_hash: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[HandbookVersion] = relationship(lazy="joined")
    case: Mapped[Case] = relationship(lazy="joined")
    created_by: Mapped[User | None] = relationship(lazy="joined")

    @property
    def outdated(self) -> bool:
        """The version's files changed after the run started: its case no longer matches."""
        return self.content_hash is not None and self.content_hash != self.version.content_hash


class CaseMigrationBatch(Base):
    """Chosen running cases moved one at a time to a target version: each case in its own
    transaction, so a failure leaves that case where it was and a stop leaves the rest."""

    __tablename__ = "case_migration_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    handbook_key: Mapped[str] = mapped_column(String(60))
    target_version_id: Mapped[int] = mapped_column(ForeignKey("handbook_version.id"))
    case_ids: Mapped[list[int]] = mapped_column(JSON)
    # case id (as text) -> {"outcome": migrated / blocked / failed, "reasons": [...]}
    results: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # running / stopped / finished
    status: Mapped[str] = mapped_column(String(20), default="running")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    batch_version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": batch_version}

    target_version: Mapped[HandbookVersion] = relationship(lazy="joined")

    @property
    def done(self) -> int:
        return len(self.results)

    @property
    def total(self) -> int:
        return len(self.case_ids)

    @property
    def next_case_id(self) -> int | None:
        return next((i for i in self.case_ids if str(i) not in self.results), None)


class HandbookValueConfirmation(Base):
    """A reviewer confirmed one inferred value (`"default": true`) of a version's data."""

    __tablename__ = "handbook_value_confirmation"
    __table_args__ = (UniqueConstraint("version_id", "path",
                                       name="uq_handbook_value_confirmation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("handbook_version.id"))
    path: Mapped[str] = mapped_column(String(300))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    confirmed_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    confirmed_at: Mapped[datetime]

    confirmed_by: Mapped[User] = relationship(lazy="joined")
