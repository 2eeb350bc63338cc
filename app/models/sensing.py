"""Sensing operations (Art 8, 12, 13, 15, 19): MQTT dead letters, feed tallies and outages,
maintenance records, coverage snapshots and filed operating rules."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class DeadLetter(Base):
    """A feed message that could not be taken in, kept with the reason for the tech admins."""

    __tablename__ = "dead_letter"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    channel: Mapped[str] = mapped_column(String(20), default="mqtt")
    topic: Mapped[str] = mapped_column(String(300))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_key.id"))
    reason: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text, default="")


class FeedTally(Base):
    """Readings received per source, point and hour, and how many of them came late (Art 8)."""

    __tablename__ = "feed_tally"
    __table_args__ = (UniqueConstraint("hour", "api_key_id", "point_code",
                                       name="uq_feed_tally_hour_key_point"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(index=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id"))
    point_code: Mapped[str] = mapped_column(String(80))
    readings: Mapped[int] = mapped_column(default=0)
    late: Mapped[int] = mapped_column(default=0)
    heartbeats: Mapped[int] = mapped_column(default=0)


class FeedOutage(Base):
    """A point silent beyond its interval, or a source whose stream stopped; ends when data
    returns. Open outages are what the duty board lists as silent feeds."""

    __tablename__ = "feed_outage"
    __table_args__ = (Index("ix_feed_outage_open", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # point / source
    point_id: Mapped[int | None] = mapped_column(ForeignKey("monitoring_point.id"), index=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_key.id"), index=True)
    silent_since: Mapped[datetime]
    detected_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("warning_case.id"))


class MaintenanceRecord(Base):
    """Operations and maintenance (Art 15): who did what to a point or a system, when, with
    what result; a planned window silences the point's alerts for its duration."""

    __tablename__ = "maintenance_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    point_id: Mapped[int | None] = mapped_column(ForeignKey("monitoring_point.id"), index=True)
    system: Mapped[str] = mapped_column(String(120), default="")
    kind: Mapped[str] = mapped_column(String(20))  # planned / repair / inspection
    performed_by: Mapped[str] = mapped_column(String(120))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    work: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text, default="")
    silence_id: Mapped[int | None] = mapped_column(ForeignKey("silence.id"))
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class CoverageSnapshot(Base):
    """Per day, scenario and town: registered points and those that reported (Art 12)."""

    __tablename__ = "coverage_snapshot"
    __table_args__ = (UniqueConstraint("day", "scenario", "node_id",
                                       name="uq_coverage_snapshot_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(index=True)
    scenario: Mapped[str] = mapped_column(String(40))
    node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"))
    registered: Mapped[int]
    monitored: Mapped[int]


class RuleFiling(Base):
    """A unit's own operating rules filed with 区安委办 (Art 19)."""

    __tablename__ = "rule_filing"

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    status: Mapped[str] = mapped_column(String(20), default="submitted")  # / acknowledged
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    acknowledged_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")
