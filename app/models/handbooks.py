"""Versioned command handbooks (Art 7): BPMN files plus handbook data, reviewed before use."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.accounts import User
from app.models.base import Base, utcnow
from app.models.org import PlatformNode


class VersionStatus(enum.StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    RETIRED = "retired"


class HandbookVersion(Base):
    """One bundle of files for one handbook (a scenario, or warning publication).

    The files of a version change only while it is a draft (saved from the designer's
    workspace); from review on only the review fields and status move. Cases
    keep a reference to the version they started on, so a later version never alters them.
    """

    __tablename__ = "handbook_version"
    __table_args__ = (
        UniqueConstraint("handbook_key", "number", name="uq_handbook_version_number"),
        # Exactly one published version per handbook, enforced by the database.
        Index("uq_handbook_version_published", "handbook_key", unique=True,
              sqlite_where=text("status = 'published'"),
              postgresql_where=text("status = 'published'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    handbook_key: Mapped[str] = mapped_column(String(60), index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"), index=True)
    number: Mapped[int]
    status: Mapped[VersionStatus] = mapped_column(
        Enum(VersionStatus, native_enum=False, length=20,
             values_callable=lambda e: [m.value for m in e]), default=VersionStatus.DRAFT)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    process_id: Mapped[str] = mapped_column(String(100))
    # Deferred: the bundle is large and, once compiled, cached by content hash.
    files: Mapped[dict[str, str]] = mapped_column(JSON, deferred=True)
    change_note: Mapped[str] = mapped_column(Text, default="")
    diff_summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    author_name: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    reviewed_at: Mapped[datetime | None]
    review_comment: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    # Drafts are edited in the browser: each save raises the revision (optimistic
    # concurrency), and says who saved last and which version the draft started from.
    revision: Mapped[int] = mapped_column(default=1, server_default="1")
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("handbook_version.id"))
    updated_at: Mapped[datetime | None]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    node: Mapped[PlatformNode] = relationship(lazy="select")
    author: Mapped[User | None] = relationship(foreign_keys=[author_id], lazy="select")
    reviewer: Mapped[User | None] = relationship(foreign_keys=[reviewer_id], lazy="select")
    updated_by: Mapped[User | None] = relationship(foreign_keys=[updated_by_id], lazy="select")

    @property
    def label(self) -> str:
        return f"{self.handbook_key} v{self.number}"
