"""Monthly and annual reports (Art 11): generated per platform node and period, written by a
business administrator, approved by a department head, then issued and frozen."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.accounts import User
from app.models.base import Base, utcnow
from app.models.org import PlatformNode

REPORT_KINDS = ("monthly", "annual")
# draft -> submitted -> issued; a returned report is a draft again (with the reviewer's reason).
REPORT_STATUSES = ("draft", "submitted", "issued")
NARRATIVE_SECTIONS = ("work", "problems", "next_steps")  # 工作情况, 存在问题, 下步工作


class Report(Base):
    __tablename__ = "report"
    __table_args__ = (UniqueConstraint("kind", "node_id", "period_start",
                                       name="uq_report_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"), index=True)
    # Local (Asia/Shanghai) calendar days; the end is the first day after the period.
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    doc_no: Mapped[str] = mapped_column(String(60), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="draft", index=True)
    narrative: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    generated_at: Mapped[datetime] = mapped_column(default=utcnow)
    written_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    written_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    reviewed_at: Mapped[datetime | None]
    review_comment: Mapped[str | None] = mapped_column(Text)
    issued_at: Mapped[datetime | None]
    # Frozen at issue: the figures as they were, and the SHA-256 of the issued document's
    # canonical form (also in the audit trail).
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sha256: Mapped[str | None] = mapped_column(String(64))

    node: Mapped[PlatformNode] = relationship(lazy="joined")
    written_by: Mapped[User | None] = relationship(foreign_keys=[written_by_id], lazy="joined")
    reviewed_by: Mapped[User | None] = relationship(foreign_keys=[reviewed_by_id],
                                                    lazy="joined")

    @property
    def scope_paths(self) -> tuple[str, ...]:
        return (self.node.path,)
