"""SQLAlchemy models, one module per aggregate."""

from app.models.accounts import Role, RoleAssignment, User
from app.models.audit import AuditRecord
from app.models.base import Base
from app.models.cases import (
    ATTACHMENT_EXTENSIONS,
    LEVEL_RANK,
    Attachment,
    Case,
    CaseComment,
    CaseEvent,
    CaseNumber,
    CaseTask,
    DataQualityIssue,
    Notification,
    OutboundMessage,
    StaffingGap,
)
from app.models.designer_runs import (
    CaseMigrationBatch,
    HandbookTestRun,
    HandbookValueConfirmation,
)
from app.models.handbooks import HandbookVersion, VersionStatus
from app.models.intake import Alert, ApiKey, MonitoringPoint, Silence
from app.models.org import Department, NodeKind, PlatformNode
from app.models.oversight import CaseFollower, CaseTally
from app.models.reports import NARRATIVE_SECTIONS, REPORT_KINDS, Report
from app.models.sensing import (
    CoverageSnapshot,
    DeadLetter,
    FeedOutage,
    FeedTally,
    MaintenanceRecord,
    RuleFiling,
)
from app.models.system import Heartbeat

__all__ = [
    "ATTACHMENT_EXTENSIONS", "LEVEL_RANK", "Alert", "ApiKey", "Attachment", "Case",
    "CaseComment", "CaseEvent", "CaseFollower", "CaseNumber", "CaseTally", "CaseTask",
    "DataQualityIssue", "MonitoringPoint",
    "Notification", "OutboundMessage", "Silence", "StaffingGap",
    "AuditRecord", "Base", "CaseMigrationBatch", "HandbookTestRun",
    "HandbookValueConfirmation", "Department", "HandbookVersion", "Heartbeat", "NodeKind",
    "PlatformNode", "Role", "RoleAssignment", "User", "VersionStatus",
    "CoverageSnapshot", "DeadLetter", "FeedOutage", "FeedTally", "MaintenanceRecord",
    "RuleFiling",
    "NARRATIVE_SECTIONS", "PlatformNode", "REPORT_KINDS", "Report", "Role", "RoleAssignment",
    "User", "VersionStatus",
]
