"""Where alerts come from and how they arrive: monitoring points, source-system API keys,
alerts as received, and silences for planned works."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.org import Department, PlatformNode


class MonitoringPoint(Base):
    """A sensor, camera or reporting point, with the town it lies in and who owns it."""

    __tablename__ = "monitoring_point"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    scenario: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(60), default="")
    node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"), index=True)
    owner_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    # The datum the coordinates are given in: "gcj02" (maps of mainland China) or "wgs84" (GPS).
    datum: Mapped[str] = mapped_column(String(10), default="gcj02", server_default="gcj02")
    address: Mapped[str] = mapped_column(String(300), default="", server_default="")
    source_system: Mapped[str] = mapped_column(String(120), default="", server_default="")
    owner_unit: Mapped[str] = mapped_column(String(200), default="", server_default="")
    maintenance_unit: Mapped[str] = mapped_column(String(200), default="", server_default="")
    installed_on: Mapped[date | None]
    # Expected seconds between two readings or heartbeats; None: the point reports on events.
    report_interval_s: Mapped[int | None]
    last_seen_at: Mapped[datetime | None] = mapped_column(index=True)
    retired_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)

    node: Mapped[PlatformNode] = relationship(lazy="joined")
    owner_department: Mapped[Department | None] = relationship(lazy="joined")


class ApiKey(Base):
    """A source system's credential: only a hash is stored; scoped to scenarios."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    source_type: Mapped[str] = mapped_column(String(20))
    scenarios: Mapped[list[str]] = mapped_column(JSON)
    # Platform node codes (towns, villages) the key may report points of; None: anywhere.
    node_codes: Mapped[list[str] | None] = mapped_column(JSON)
    # The last reading or heartbeat of this source, at most a few seconds stale.
    last_seen_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Alert(Base):
    """One reading or report as it arrived. Never deleted, never dropped."""

    __tablename__ = "alert"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key", name="uq_alert_idempotency"),
        Index("ix_alert_dedup_key_received", "dedup_key", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_key.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    observed_at: Mapped[datetime]
    source_type: Mapped[str] = mapped_column(String(20))
    point_code: Mapped[str] = mapped_column(String(80))
    point_id: Mapped[int | None] = mapped_column(ForeignKey("monitoring_point.id"))
    scenario: Mapped[str] = mapped_column(String(40), index=True)
    item_code: Mapped[str] = mapped_column(String(60))
    indicator: Mapped[str] = mapped_column(String(60))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(20), default="")
    level: Mapped[str | None] = mapped_column(String(10))
    dedup_key: Mapped[str] = mapped_column(String(240))
    # opened / grouped / upgraded / back_to_normal / below_threshold / silenced
    disposition: Mapped[str] = mapped_column(String(20))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("warning_case.id"), index=True)
    unknown_point: Mapped[bool] = mapped_column(default=False, index=True)
    silence_id: Mapped[int | None] = mapped_column(ForeignKey("silence.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Silence(Base):
    """Planned works: matching alerts are stored and shown but open no case."""

    __tablename__ = "silence"

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario: Mapped[str] = mapped_column(String(40))
    point_code: Mapped[str] = mapped_column(String(80))
    indicator: Mapped[str | None] = mapped_column(String(60))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
