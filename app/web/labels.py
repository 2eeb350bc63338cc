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
    "handbook.draft": _l("Handbook version drafted"),
    "handbook.submit": _l("Handbook version sent for review"),
    "handbook.publish": _l("Handbook version approved and published"),
    "handbook.reject": _l("Handbook version rejected"),
    "apikey.issue": _l("API key issued"),
    "apikey.revoke": _l("API key revoked"),
    "point.register": _l("Monitoring point registered"),
    "silence.create": _l("Planned works silence set"),
    "silence.end": _l("Planned works silence ended"),
    "quality.correct": _l("Data-quality correction"),
    "cases.export": _l("Case list exported"),
    "task.delegate": _l("Task handed to a named person"),
    "case.migrate": _l("Case moved to another handbook version"),
    "case.migrate_batch": _l("Case migration started"),
    "case.migrate_stop": _l("Case migration stopped"),
    "filing.submit": _l("Rules document submitted for filing"),
    "filing.acknowledge": _l("Rules filing acknowledged"),
    "handbook.confirm_value": _l("Inferred handbook value confirmed"),
    "handbook.data_edit": _l("Handbook data edited"),
    "handbook.draft_save": _l("Handbook draft saved"),
    "handbook.test_run": _l("Test run started"),
    "handbook.test_run_delete": _l("Test run deleted"),
    "maintenance.record": _l("Maintenance recorded"),
    "point.import": _l("Monitoring points imported"),
    "point.retire": _l("Monitoring point retired"),
    "point.update": _l("Monitoring point changed"),
    "report.write": _l("Report narrative written"),
    "report.submit": _l("Report sent for approval"),
    "report.return": _l("Report returned for changes"),
    "report.issue": _l("Report approved and issued"),
}

AUDIT_OBJECT_LABELS: dict[str, Any] = {
    "user": _l("Account"),
    "api_key": _l("API key"),
    "case": _l("Case"),
    "data_quality_issue": _l("Data-quality issue"),
    "handbook_version": _l("Handbook version"),
    "monitoring_point": _l("Monitoring point"),
    "silence": _l("Planned works silence"),
    "case_list": _l("Case list"),
    "case_task": _l("Task"),
    "maintenance_record": _l("Maintenance record"),
    "report": _l("Report"),
    "rule_filing": _l("Rules filing"),
}

AUDIT_RESULT_LABELS: dict[str, Any] = {
    "ok": _l("Succeeded"),
    "unknown_user": _l("Unknown user name"),
    "wrong_password": _l("Wrong password"),
    "locked": _l("Refused: account locked"),
    "locked_now": _l("Wrong password; account now locked"),
    "deactivated": _l("Refused: account deactivated"),
    "session_expired": _l("Session too old"),
    "idle_timeout": _l("Idle too long"),
}

# The fields the audit trail records before and after a change, as people read them.
AUDIT_FIELD_LABELS: dict[str, Any] = {
    "username": _l("User name"), "display_name": _l("Name"), "phone": _l("Phone"),
    "department": _l("Department"), "home_node": _l("Home platform"), "active": _l("Active"),
    "roles": _l("Roles"), "handbook": _l("Handbook"), "number": _l("Version"),
    "hash": _l("Content hash"), "status": _l("Status"), "comment": _l("Review comment"),
    "retired": _l("Version retired"), "name": _l("Name"), "source_type": _l("Source type"),
    "scenarios": _l("Scenarios"), "prefix": _l("Prefix"), "revoked": _l("Revoked"),
    "reason": _l("Reason"), "locked_until": _l("Locked until"),
    "failed_logins": _l("Failed log-ins"), "must_change_password": _l("Must change password"),
    "scenario": _l("Scenario"), "point": _l("Monitoring point"), "node": _l("Platform node"),
    "starts_at": _l("Starts"), "ends_at": _l("Ends"), "ended_at": _l("Ended"),
    "case": _l("Case"), "rule": _l("Rule"), "resolved": _l("Resolved"),
    "message": _l("Message"), "error": _l("Error"), "attempts": _l("Attempts"),
    "code": _l("Code"), "indicator": _l("Indicator"), "lat": _l("Latitude"),
    "lon": _l("Longitude"),
    "nodes": _l("Towns"), "node_codes": _l("Towns"), "batch": _l("Batch"),
    "case_no": _l("Case number"), "cases": _l("Cases"), "changed": _l("Changed"),
    "claimed_by": _l("Claimed by"), "created": _l("Created"), "doc_no": _l("Document number"),
    "done": _l("Done"), "item": _l("Warning item"), "note": _l("Note"), "path": _l("Path"),
    "retired_at": _l("Retired"), "revision": _l("Revision"), "run": _l("Test run"),
    "title": _l("Title"), "total": _l("Total"), "updated": _l("Updated"), "value": _l("Value"),
    "to": _l("To"), "from": _l("From"), "file": _l("File"), "rows": _l("Rows"),
}
