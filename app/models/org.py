"""The platform tree of Art 2/4 and the departments that own its nodes."""

from __future__ import annotations

import enum

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base


class NodeKind(enum.StrEnum):
    DISTRICT = "district"
    INDUSTRY = "industry"
    SCENARIO = "scenario"
    LINGANG = "lingang"
    TOWN = "town"
    VILLAGE = "village"


class Department(Base):
    __tablename__ = "department"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(120))
    responsibilities: Mapped[str] = mapped_column(Text, default="")
    # True where the regulation does not say it and the value is a working assumption.
    is_inferred: Mapped[bool] = mapped_column(default=False)


class PlatformNode(Base):
    """One platform, scenario, town or village; roles are scoped to these nodes.

    `path` is the materialised chain of ids ("/1/4/17/") so "this node and everything
    under it" is one indexed prefix query.
    """

    __tablename__ = "platform_node"
    __table_args__ = (Index("ix_platform_node_path", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    kind: Mapped[NodeKind] = mapped_column(
        Enum(NodeKind, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )
    name: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str | None] = mapped_column(String(160))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("platform_node.id"), index=True)
    path: Mapped[str] = mapped_column(String(200), default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    # Sub-kind for towns: "street" (街道) or "town" (镇).
    subdivision: Mapped[str | None] = mapped_column(String(20))
    is_inferred: Mapped[bool] = mapped_column(default=False)
    is_generated: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(Text, default="")

    department: Mapped[Department | None] = relationship(lazy="joined")

    def covers(self, other: PlatformNode) -> bool:
        """True when `other` is this node or lies under it."""
        return other.path.startswith(self.path)
