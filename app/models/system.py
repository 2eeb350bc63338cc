"""Runtime facts the technical administrators watch (Art 13)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class Heartbeat(Base):
    """The last time a background worker proved it was alive."""

    __tablename__ = "heartbeat"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    beat_at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(String(200), default="")
