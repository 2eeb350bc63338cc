"""Human labels for domain codes, translatable."""

from __future__ import annotations

from typing import Any

from app.i18n import _l
from app.models import NodeKind, Role

ROLE_LABELS: dict[Role, Any] = {
    Role.LEADER_IN_CHARGE: _l("Leader in charge"),
    Role.DEPARTMENT_HEAD: _l("Department head"),
    Role.BUSINESS_ADMIN: _l("Business administrator"),
    Role.RESPONDER: _l("Responder"),
    Role.TECH_UNIT_HEAD: _l("Tech support unit head"),
    Role.TECH_ADMIN: _l("Tech administrator"),
    Role.DISTRICT_OFFICE: _l("District safety committee office"),
    Role.AUDITOR: _l("Auditor (read-only)"),
    Role.SYSTEM_ADMIN: _l("System administrator"),
    Role.SECURITY_ADMIN: _l("Security administrator"),
    Role.AUDIT_ADMIN: _l("Audit administrator"),
}

# What each role does here, shown on its home page (Art 5, 6, 15 and the three-administrator rule).
ROLE_DUTIES: dict[Role, Any] = {
    Role.LEADER_IN_CHARGE: _l("Oversees the platforms and scenarios under you, decides major "
                              "matters and receives supervision escalations."),
    Role.DEPARTMENT_HEAD: _l("Reviews key data elements, indicators, command handbooks and "
                             "monthly reports of your platform or scenario."),
    Role.BUSINESS_ADMIN: _l("Runs monitoring, business standards, sensing data, warning "
                            "disposal, risk assessment and operating reports."),
    Role.RESPONDER: _l("Accepts work orders, disposes, cancels warnings and gives closed-loop "
                       "feedback for your area."),
    Role.TECH_UNIT_HEAD: _l("Answers for the technical operation, security and stability of "
                            "your platform."),
    Role.TECH_ADMIN: _l("Watches runtime health, opens and changes accounts and configures "
                        "roles for your platform."),
    Role.DISTRICT_OFFICE: _l("Leads the operation of the whole platform system, oversees every "
                             "platform and scenario, and reviews the audit trail."),
    Role.AUDITOR: _l("Reads and replays what happened; you cannot change anything."),
    Role.SYSTEM_ADMIN: _l("Opens, changes and deactivates accounts."),
    Role.SECURITY_ADMIN: _l("Assigns roles and permissions, unlocks accounts and resets "
                            "passwords."),
    Role.AUDIT_ADMIN: _l("Reviews the audit trail of every administrative action and checks "
                         "that it has not been tampered with."),
}

NODE_KIND_LABELS: dict[NodeKind, Any] = {
    NodeKind.DISTRICT: _l("District platform"),
    NodeKind.INDUSTRY: _l("Industry sub-platforms"),
    NodeKind.SCENARIO: _l("Scenarios"),
    NodeKind.LINGANG: _l("Lingang sub-platform"),
    NodeKind.TOWN: _l("Street and town sub-platforms"),
    NodeKind.VILLAGE: _l("Village micro-platforms"),
}

AUDIT_ACTION_LABELS: dict[str, Any] = {
    "login": _l("Log-in"),
    "logout": _l("Log-out"),
    "password.change": _l("Password changed"),
    "account.open": _l("Account opened"),
    "account.change": _l("Account changed"),
    "account.deactivate": _l("Account deactivated"),
    "account.activate": _l("Account reactivated"),
    "account.lock": _l("Account locked after failed log-ins"),
    "account.unlock": _l("Account unlocked"),
    "account.reset_password": _l("Password reset"),
    "role.assign": _l("Role assigned"),
    "role.revoke": _l("Role revoked"),
    "case.retry": _l("Stuck case retried"),
    "cases.export": _l("Case list exported"),
    "task.delegate": _l("Task handed to a named person"),
}
