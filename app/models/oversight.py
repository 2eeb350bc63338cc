"""Oversight: people who follow a case to hear of its steps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class CaseFollower(Base):
    """Someone who sees a case and asked to be told of each of its steps."""

    __tablename__ = "case_follower"
    __table_args__ = (UniqueConstraint("case_id", "user_id", name="uq_case_follower"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("warning_case.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseTally(Base):
    """Counts of non-test cases per value of the case list's facets (migration 0016): rows of
    +1 and -1 written by triggers on every change of a case's key, summed now and then."""

    __tablename__ = "case_tally"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    level: Mapped[str | None] = mapped_column(String(10))
    scenario: Mapped[str | None] = mapped_column(String(40))
    scenario_path: Mapped[str | None] = mapped_column(String(200))
    # The case's place, or for a village its street or town.
    place_id: Mapped[int | None]
    place_path: Mapped[str | None] = mapped_column(String(200))
    department_id: Mapped[int | None]
    loop_level: Mapped[str | None] = mapped_column(String(10))
    source: Mapped[str | None] = mapped_column(String(240))
    n: Mapped[int]
