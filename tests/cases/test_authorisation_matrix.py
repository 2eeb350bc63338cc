"""Every route of the application, for one user of each role of the demo (and nobody logged
in): the answer lets the caller through exactly when the permission table says so (`can`,
and for task steps `holds_role_over`), a refusal is 401, 403, 404 or the log-in page, and
nothing is ever a server error. GET where a route reads, POST (with a valid CSRF token) where
it writes; the request bodies are empty, so a refusal must come before the input is read."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Case,
    CaseTask,
    DataQualityIssue,
    HandbookVersion,
    MonitoringPoint,
    PlatformNode,
    Report,
    Role,
    User,
    VersionStatus,
)
from app.services import api_keys, cases, filings, handbooks, intake, org
from app.services.intake import AlertIn
from app.services.permissions import ACTIONS, can, holds_role_over
from cases_fixtures import publish_all
from helpers import Browser, demo_role_nodes

SCENARIO = "flood_typhoon"
PROCESS_FILE = f"bpmn/scenario_{SCENARIO}.bpmn"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
_BUNDLES: list[Any] = []


@dataclass
class World:
    """What the routes point at, made fresh for each caller (their requests change it)."""

    case: Case
    task: CaseTask
    target: User
    version: HandbookVersion
    publication: HandbookVersion
    scenario_node: PlatformNode
    report: Report
    district: PlatformNode
    values: dict[str, str]


@pytest.fixture
def world(app: Flask, dbconn: Any, clock: Any, make_user: Callable[..., dict[str, Any]],
          monkeypatch: pytest.MonkeyPatch) -> World:
    if not _BUNDLES:
        _BUNDLES.extend(b for b in handbooks.collect_bundles()
                        if b.key in (SCENARIO, "warning_publication"))
    monkeypatch.setattr(handbooks, "collect_bundles", lambda root=None: list(_BUNDLES))
    target_id = make_user((Role.RESPONDER, "town.02"), username="target")["id"]
    with app.app_context():
        now = clock()
        publish_all(now)
        writer = db.session.scalar(select(User).where(User.username == "hb.writer"))
        issued = api_keys.issue(_tech_admin(),
                                name="matrix", source_type="iot", scenarios=[SCENARIO],
                                now=now, known_scenarios={SCENARIO})
        db.session.add(MonitoringPoint(code="RAIN-0001", name="雨量站", scenario=SCENARIO,
                                       node=org.node_by_code("town.02"), lat=31.2, lon=121.5))
        db.session.flush()
        outcome = intake.ingest(issued.key, AlertIn(
            scenario=SCENARIO, indicator="rainfall_1h_mm", point_code="RAIN-0001", value=60.0,
            observed_at=now), now=now)
        case = db.session.scalar(select(Case).where(Case.case_no == outcome.case_no))
        attachment = cases.add_attachment(writer, case, filename="现场.png", content=PNG,
                                          now=now)
        cases.add_comment(writer, case, "已到场", now=now)
        silence = intake.silence(writer, scenario=SCENARIO, point_code="RAIN-0001",
                                 indicator=None, starts_at=now, ends_at=now + timedelta(hours=1),
                                 reason="检修", now=now)
        filing = filings.submit(writer, node_id=org.node_by_code(f"scenario.{SCENARIO}").id,
                                title="运行管理制度", filename="制度.pdf",
                                content=b"%PDF-1.4\n" + b"0" * 64, now=now)
        issue = DataQualityIssue(case_id=case.id, rule="matrix", message="测试", detected_at=now)
        db.session.add(issue)
        report = Report(kind="monthly", node=org.node_by_code("town.02"),
                        period_start=date(2026, 6, 1), period_end=date(2026, 7, 1),
                        doc_no="matrix-1", title="月报", status="draft", narrative={},
                        generated_at=now)
        db.session.add(report)
        db.session.commit()
        task = db.session.scalar(select(CaseTask).where(CaseTask.case_id == case.id,
                                                        CaseTask.status == "ready"))
        target = db.session.get(User, target_id)
        version = db.session.scalar(select(HandbookVersion).where(
            HandbookVersion.handbook_key == SCENARIO))
        publication = db.session.scalar(select(HandbookVersion).where(
            HandbookVersion.handbook_key == "warning_publication",
            HandbookVersion.status == VersionStatus.PUBLISHED))
        values = {
            "case_no": case.case_no, "task_id": str(task.id), "attachment_id": str(attachment.id),
            "user_id": str(target.id), "assignment_id": str(target.assignments[0].id),
            "node_id": str(case.node_id), "version_id": str(version.id), "name": PROCESS_FILE,
            "action": "submit", "key": SCENARIO, "issue_id": str(issue.id),
            "silence_id": str(silence.id), "key_id": str(issued.key.id),
            "case_id": str(case.id), "fmt": "csv", "filing_id": str(filing.id),
            "point_id": str(db.session.scalar(select(MonitoringPoint.id).where(
                MonitoringPoint.code == "RAIN-0001"))),
            "report_id": str(report.id),
            "filename": "css/app.css"}
        values.update(_designer_objects(writer, case, now))
        # Everything the rules read is loaded now: they run outside any request.
        for row in (case, task, target, version, publication, report):
            db.session.refresh(row)
        _ = (case.node, version.node, publication.node, target.home_node,
             [a.node for a in target.assignments], report.node)
        scenario_node = org.node_by_code(f"scenario.{SCENARIO}")
        district = org.node_by_code("district")
        db.session.expunge_all()
        return World(case, task, target, version, publication, scenario_node, report, district,
                     values)


def _designer_objects(writer: User, case: Case, now: Any) -> dict[str, str]:
    """A test run of a draft and a batch moving the case: the designer's routes point at them."""
    from app.services import case_migration, test_runs
    from cases_fixtures import draft_of

    draft_id = draft_of(SCENARIO, now)
    run = test_runs.start_run(writer, draft_id, test_runs.SampleAlert(
        item_code="FLOOD-RAIN-1H", level="blue", value=None, town="town.02"), now=now)
    step = test_runs.open_tasks(run)[0]
    batch = case_migration.start_batch(writer, SCENARIO, case.handbook_version_id, [case.id],
                                       now=now)
    db.session.commit()
    return {"run_id": str(run.id), "step_id": str(step.id), "batch_id": str(batch.id)}


def _tech_admin() -> User:
    user = User(username="matrix.tech", display_name="运维", password_hash="x",
                home_node=org.node_by_code("district"))
    from app.models import RoleAssignment

    user.assignments = [RoleAssignment(role=Role.TECH_ADMIN, node=org.node_by_code("district"))]
    db.session.add(user)
    db.session.flush()
    return user


# ---------------------------------------------------------------- the expected answers

Rule = Callable[[User | None, World], bool]


def public(user: User | None, world: World) -> bool:
    return True


def nobody(user: User | None, world: World) -> bool:
    return False  # a source system's API key, never a person's session


def logged_in(user: User | None, world: World) -> bool:
    return user is not None


def may(action: str, target: Callable[[World], Any] | None = None) -> Rule:
    assert action in ACTIONS, action
    return lambda user, world: can(user, action, target(world) if target else None)


def every(*rules: Rule) -> Rule:
    return lambda user, world: all(rule(user, world) for rule in rules)


def some(*rules: Rule) -> Rule:
    return lambda user, world: any(rule(user, world) for rule in rules)


def on_the_lane(user: User | None, world: World) -> bool:
    """Task steps: the task's own role over its own area (lanes reach beyond the case)."""
    return user is not None and holds_role_over(user, world.task.role, world.task.scope_paths)


def case_(world: World) -> Any:
    return world.case


def sees_case(user: User | None, world: World) -> bool:
    """case.view over the case, or a role a task of the case is addressed to."""
    return can(user, "case.view", world.case) or on_the_lane(user, world)


target = lambda world: world.target  # noqa: E731
version_node = lambda world: world.version.node  # noqa: E731
scenario = lambda world: world.scenario_node  # noqa: E731
acts_on_case = every(sees_case, may("case.act", case_))
report_ = lambda world: world.report  # noqa: E731
district = lambda world: world.district  # noqa: E731

EXPECTED: dict[tuple[str, str], Rule] = {
    ("static", "GET"): public,
    ("favicon", "GET"): public,
    ("auth.login", "GET"): public,
    ("auth.login", "POST"): public,
    ("auth.logout", "POST"): logged_in,
    ("auth.change_password", "GET"): logged_in,
    ("auth.change_password", "POST"): logged_in,
    ("auth.set_language", "POST"): public,
    ("main.home", "GET"): logged_in,
    ("main.tree", "GET"): may("tree.view"),
    ("main.node", "GET"): may("tree.view"),
    ("main.status", "GET"): may("system.status"),
    ("admin.users", "GET"): may("accounts.view"),
    ("admin.new_user", "GET"): may("accounts.manage"),
    ("admin.new_user", "POST"): may("accounts.manage"),
    ("admin.user", "GET"): may("accounts.view", target),
    ("admin.user", "POST"): may("accounts.manage", target),
    ("admin.set_active", "POST"): may("accounts.manage", target),
    ("admin.unlock", "POST"): may("accounts.unlock", target),
    ("admin.reset_password", "POST"): may("accounts.unlock", target),
    ("admin.assign_role", "POST"): may("roles.assign", target),
    ("admin.revoke_role", "POST"): may("roles.assign", target),
    ("admin.audit_log", "GET"): may("audit.view"),
    ("handbooks.index", "GET"): may("handbook.view"),
    ("handbooks.versions", "GET"): may("handbook.view"),
    ("handbooks.file", "GET"): may("handbook.view"),
    ("handbooks.review", "POST"): may("handbook.draft", version_node),  # action=submit
    ("operations.index", "GET"): some(may("overdue.view"), may("silence.manage"),
                                      may("apikeys.manage"), may("case.correct"),
                                      may("case.retry")),
    ("operations.stuck_page", "GET"): may("case.retry"),
    ("operations.retry_stuck", "POST"): may("case.retry"),
    ("operations.start_publication", "POST"): may(
        "publication.start", lambda world: world.publication.node),
    ("operations.overdue_page", "GET"): may("overdue.view"),
    ("operations.overdue_json", "GET"): may("overdue.view"),
    ("operations.quality_page", "GET"): may("overdue.view"),
    ("operations.issue", "GET"): may("overdue.view", case_),
    ("operations.issue", "POST"): every(may("overdue.view", case_), may("case.correct", case_)),
    ("operations.silences", "GET"): some(may("silence.manage"), may("overdue.view")),
    ("operations.silences", "POST"): may("silence.manage"),
    ("operations.end_silence", "POST"): may("silence.manage", scenario),
    ("operations.keys", "GET"): may("apikeys.manage"),
    ("operations.keys", "POST"): may("apikeys.manage"),
    ("operations.revoke_key", "POST"): may("apikeys.manage", scenario),
    ("operations.unknown_points", "GET"): some(may("case.correct"), may("overdue.view")),
    ("operations.register_point", "GET"): may("case.correct", scenario),
    ("operations.register_point", "POST"): may("case.correct", scenario),
    ("cases.inbox_page", "GET"): logged_in,
    ("cases.claim", "POST"): on_the_lane,
    ("cases.release", "POST"): on_the_lane,
    ("cases.task", "GET"): sees_case,
    ("cases.task", "POST"): on_the_lane,
    ("cases.case_page", "GET"): sees_case,
    ("cases.replay", "GET"): every(sees_case, may("audit.view")),
    ("cases.add_comment", "POST"): acts_on_case,
    ("cases.add_attachment", "POST"): acts_on_case,
    ("cases.attachment", "GET"): sees_case,
    ("cases.notifications", "GET"): logged_in,
    ("cases.mark_read", "POST"): logged_in,
    ("oversight.case_list", "GET"): may("case.view"),
    ("oversight.export", "GET"): may("case.view"),
    ("oversight.board_page", "GET"): may("board.view"),
    ("oversight.board_data", "GET"): may("board.view"),
    ("oversight.map_page", "GET"): may("board.view"),
    ("oversight.map_data", "GET"): may("board.view"),
    ("oversight.delegate", "POST"): every(sees_case, may("task.assign", case_)),
    ("oversight.follow", "POST"): sees_case,
    ("designer.index", "GET"): may("handbook.design"),
    ("designer.modeler", "GET"): may("handbook.design", version_node),
    ("designer.validate", "POST"): may("handbook.design"),
    ("designer.preview", "GET"): may("handbook.view"),
    ("designer.workspace", "GET"): may("handbook.design", version_node),
    ("designer.import_file", "POST"): may("handbook.design"),
    ("designer.save_draft", "POST"): may("handbook.draft"),
    ("designer.compare", "GET"): may("handbook.view"),
    ("handbooks.review_page", "GET"): may("handbook.view"),
    ("test_runs.runs", "GET"): may("handbook.view"),
    ("test_runs.runs", "POST"): may("handbook.design", version_node),
    ("test_runs.run_page", "GET"): may("handbook.view"),
    ("test_runs.complete", "POST"): may("handbook.design", version_node),
    ("test_runs.clock", "POST"): may("handbook.design", version_node),
    ("test_runs.retry", "POST"): may("handbook.design", version_node),
    ("test_runs.delete", "POST"): may("handbook.design", version_node),
    ("case_migration.cases", "GET"): may("handbook.design", version_node),
    ("handbook_data.form", "GET"): may("handbook.design", version_node),
    ("handbook_data.form", "POST"): may("handbook.design", version_node),
    ("handbook_data.inferred", "GET"): may("handbook.view"),
    ("handbook_data.inferred", "POST"): may("handbook.review", version_node),
    ("case_migration.dry_run", "GET"): may("handbook.design", version_node),
    ("case_migration.start", "POST"): may("handbook.design", version_node),
    ("case_migration.batch", "GET"): may("handbook.design", version_node),
    ("case_migration.step", "POST"): may("handbook.design", version_node),
    ("case_migration.stop", "POST"): may("handbook.design", version_node),
    ("api.health", "GET"): public,
    ("api.alerts.receive_alerts", "POST"): nobody,
    ("api.alerts.receive_heartbeat", "POST"): nobody,
    ("api.session.csrf_token", "GET"): public,
    ("api.session.who_am_i", "GET"): logged_in,
    ("api.session.log_in", "POST"): public,
    ("api.session.log_out", "DELETE"): logged_in,
    ("api.cases.list_cases", "GET"): may("case.view"),
    ("api.cases.case_detail", "GET"): sees_case,
    ("api.cases.my_tasks", "GET"): logged_in,
    ("api.cases.claim_task", "POST"): on_the_lane,
    ("api.cases.release_task", "POST"): on_the_lane,
    ("api.cases.complete_task", "POST"): on_the_lane,
    ("api.cases.add_comment", "POST"): acts_on_case,
    ("api.cases.add_attachment", "POST"): acts_on_case,
    ("api.openapi.openapi_document", "GET"): public,
    ("metrics.metrics", "GET"): nobody,  # a bearer token (METRICS_TOKEN), never a session
    ("registry.points_page", "GET"): may("points.view"),
    ("registry.point", "GET"): may("points.view", case_),
    ("registry.point", "POST"): may("points.manage", case_),
    ("registry.retire_point", "POST"): may("points.manage", case_),
    ("registry.import_points", "GET"): may("points.manage"),
    ("registry.import_points", "POST"): may("points.manage"),
    ("registry.export_points", "GET"): may("points.view"),
    ("registry.feeds_page", "GET"): some(may("system.status"), may("points.view")),
    ("registry.maintenance_page", "GET"): may("points.view"),
    ("registry.maintenance_page", "POST"): may("points.manage"),
    ("registry.account_lifecycle", "GET"): may("accounts.view"),
    ("registry.coverage_page", "GET"): may("points.view"),
    ("registry.filings_page", "GET"): some(may("filing.submit"), may("filing.acknowledge")),
    ("registry.filings_page", "POST"): may("filing.submit"),
    ("registry.acknowledge_filing", "POST"): may("filing.acknowledge"),
    ("registry.filing_file", "GET"): some(may("filing.submit", scenario),
                                          may("filing.acknowledge", scenario)),
    ("reports.figures_page", "GET"): may("report.view"),
    ("reports.figures_xlsx", "GET"): may("report.view"),
    ("reports.figures_pdf", "GET"): may("report.view"),
    ("reports.report_list", "GET"): may("report.view"),
    ("reports.report_page", "GET"): may("report.view", report_),
    ("reports.save_narrative", "POST"): may("report.write", report_),
    ("reports.submit", "POST"): may("report.write", report_),
    ("reports.approve", "POST"): may("report.approve", report_),
    ("reports.return_report", "POST"): may("report.approve", report_),
    ("reports.report_xlsx", "GET"): may("report.view", report_),
    ("reports.report_pdf", "GET"): may("report.view", report_),
    ("reports.bulletin", "GET"): may("report.view", district),
    ("reports.bulletin_xlsx", "GET"): may("report.view", district),
    ("reports.bulletin_pdf", "GET"): may("report.view", district),
}
# Answered last: they end the session the other requests run in.
ENDS_SESSION = {("auth.logout", "POST"), ("api.session.log_out", "DELETE")}
# Answered after the others but before those: they remove what other routes point at.
REMOVES = {("test_runs.delete", "POST")}
EXTRA_QUERY = {"operations.register_point": f"?scenario={SCENARIO}&code=RAIN-UNKNOWN",
               "designer.compare": "?new={version_id}"}


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) of every route, the session-ending ones last."""
    found = [(rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
             for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(found, key=lambda r: ((r[0], r[1]) in ENDS_SESSION, (r[0], r[1]) in REMOVES,
                                        r))


def test_every_route_has_an_expected_answer(app: Flask) -> None:
    declared = {(endpoint, method) for endpoint, method, _ in _routes(app)}
    assert declared == set(EXPECTED), (declared ^ set(EXPECTED))


def _url(rule: str, endpoint: str, values: dict[str, str]) -> str:
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], rule)
    return path + EXTRA_QUERY.get(endpoint, "").format(**values)


def _refused(response: Any) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    return response.status_code == 302 and urlpath(response.location) == "/login"


def urlpath(location: str) -> str:
    return re.sub(r"^https?://[^/]+", "", location).split("?")[0]


def _ask(browser: Browser, token: str, method: str, url: str) -> Any:
    client = browser.client
    if method == "GET":
        return client.get(url)
    if url.startswith("/api/"):
        return client.open(url, method=method, json={}, headers={"X-CSRFToken": token})
    return client.open(url, method=method, data={"csrf_token": token})


PRINCIPALS = [None, *Role]


@pytest.mark.parametrize("role", PRINCIPALS, ids=lambda r: str(r or "anonymous"))
def test_each_route_answers_as_the_permission_table_says(app: Flask, world: World,
                                                         as_role: Any, role: Role | None
                                                         ) -> None:
    if role is None:
        browser, user = Browser(app.test_client()), None
        token = browser.csrf("/login")
    else:
        browser = as_role((role, demo_role_nodes()[role]), locale="en")
        token = browser.csrf("/")
        with app.app_context():
            user = db.session.get(User, browser.account["id"])  # type: ignore[attr-defined]
            _ = [a.node for a in user.assignments]
            db.session.expunge(user)
    wrong: list[str] = []
    for endpoint, method, rule in _routes(app):
        url = _url(rule, endpoint, world.values)
        response = _ask(browser, token, method, url)
        response.close()
        with app.app_context():
            expected = EXPECTED[(endpoint, method)](user, world)
        status = response.status_code
        if status >= 500:
            wrong.append(f"{method} {url}: {status} server error")
        elif expected and _refused(response):
            wrong.append(f"{method} {url}: refused ({status}) though the table allows it")
        elif not expected and not _refused(response):
            wrong.append(f"{method} {url}: answered {status} though the table refuses it")
    assert not wrong, "\n".join(wrong)
