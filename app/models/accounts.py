"""User accounts and role assignments scoped to nodes of the platform tree."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.org import Department, PlatformNode


class Role(enum.StrEnum):
    LEADER_IN_CHARGE = "leader_in_charge"
    DEPARTMENT_HEAD = "department_head"
    BUSINESS_ADMIN = "business_admin"
    RESPONDER = "responder"
    TECH_UNIT_HEAD = "tech_unit_head"
    TECH_ADMIN = "tech_admin"
    DISTRICT_OFFICE = "district_office"
    AUDITOR = "auditor"
    SYSTEM_ADMIN = "system_admin"
    SECURITY_ADMIN = "security_admin"
    AUDIT_ADMIN = "audit_admin"


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(30))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    # The node the account belongs to: whoever administers that node manages the account.
    home_node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    locale: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Part of every session's identity: raising it ends all sessions of the account.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")

    department: Mapped[Department | None] = relationship(lazy="joined")
    home_node: Mapped[PlatformNode] = relationship(lazy="joined")
    assignments: Mapped[list[RoleAssignment]] = relationship(
        back_populates="user", lazy="selectin", cascade="all, delete-orphan",
        foreign_keys="RoleAssignment.user_id",
    )

    # Flask-Login protocol
    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        # What Flask-Login keeps in the session; see accounts.load_user.
        return f"{self.id}:{self.session_generation}"

    def roles(self) -> set[Role]:
        return {a.role for a in self.assignments}


class RoleAssignment(Base):
    """A role held on one node; it covers that node and all of its descendants."""

    __tablename__ = "role_assignment"
    __table_args__ = (UniqueConstraint("user_id", "role", "node_id", name="uq_role_assignment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=30, values_callable=lambda e: [m.value for m in e])
    )
    node_id: Mapped[int] = mapped_column(ForeignKey("platform_node.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    user: Mapped[User] = relationship(back_populates="assignments", foreign_keys=[user_id])
    node: Mapped[PlatformNode] = relationship(lazy="joined")
