"""SQLAlchemy models, one module per aggregate."""

from app.models.accounts import Role, RoleAssignment, User
from app.models.audit import AuditRecord
from app.models.base import Base
from app.models.handbooks import HandbookVersion, VersionStatus
from app.models.org import Department, NodeKind, PlatformNode
from app.models.system import Heartbeat

__all__ = [
    "AuditRecord", "Base", "Department", "HandbookVersion", "Heartbeat", "NodeKind",
    "PlatformNode", "Role", "RoleAssignment", "User", "VersionStatus",
]
