"""Handing a task to a named person (audited, on the case, notified), following a case, and
the work-chat robots (WeCom, DingTalk) receiving notices in their own formats."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobs import deliver_outbound
from app.models import AuditRecord, Case, CaseEvent, CaseTask, Notification, OutboundMessage, Role
from app.services import notify
from helpers import Browser


@pytest.fixture
def people(make_user) -> dict[str, int]:
    return {
        "business_admin": make_user((Role.BUSINESS_ADMIN, "district"))["id"],
        "responder": make_user((Role.RESPONDER, "district"))["id"],
        "department_head": make_user((Role.DEPARTMENT_HEAD, "district"))["id"],
    }


@pytest.fixture
def accept_task(published, point, send, drive, people) -> str:
    """A gas case in 陆家嘴 waiting for a responder to accept it: its number."""
    point("GAS-MH-0101", "gas", town="town.02")
    case_no = str(send("gas", "ch4_lel", 30.0, "GAS-MH-0101")["case_no"])
    drive(case_no, people, stop_at="Activity_accept")
    return case_no


def _task(app: Any, case_no: str) -> CaseTask:
    with app.app_context():
        row = db.session.scalar(select(CaseTask).join(Case).where(
            Case.case_no == case_no, CaseTask.status == "ready"))
        db.session.expunge(row)
        return row


def test_a_department_head_hands_a_task_to_a_named_responder(app, accept_task, as_role,
                                                             make_user):
    case_no = accept_task
    task = _task(app, case_no)
    wang = make_user((Role.RESPONDER, "town.02"), username="wang")
    head = as_role((Role.DEPARTMENT_HEAD, "industry.construction"), locale="en")
    page = head.text(f"/cases/{case_no}")
    assert f'data-delegate="{task.id}"' in page and "wang" in page
    answer = head.post(f"/tasks/{task.id}/delegate",
                       {"to": str(wang["id"]), "reason": "王师傅在现场附近"})
    assert answer.status_code == 302
    with app.app_context():
        row = db.session.get(CaseTask, task.id)
        assert row.claimed_by_id == wang["id"] and row.delegation_reason == "王师傅在现场附近"
        event = db.session.scalar(select(CaseEvent).where(
            CaseEvent.case_id == row.case_id, CaseEvent.kind == "delegate"))
        assert event.data["to"] == "wang" and event.data["reason"] == "王师傅在现场附近"
        audit = db.session.scalar(select(AuditRecord).where(
            AuditRecord.action == "task.delegate"))
        assert audit.after["claimed_by"] == "wang"
        notice = db.session.scalar(select(Notification).where(
            Notification.user_id == wang["id"], Notification.kind == "delegated"))
        assert "王师傅在现场附近" in notice.body
    browser = Browser(app.test_client())
    assert browser.login("wang").status_code == 302
    listed = browser.text("/inbox?status=mine")
    assert f'data-task="{task.id}"' in listed and "data-delegated" in listed


@pytest.mark.parametrize(("who", "reason", "message"), [
    ("elsewhere", "就近处置", "does not hold this task"),
    ("nobody", "就近处置", "Choose an active person"),
    ("wang", "  ", "Say why the task is handed over"),
])
def test_hand_over_refusals_say_what_is_wrong_and_change_nothing(
        app, accept_task, as_role, make_user, who, reason, message):
    case_no = accept_task
    task = _task(app, case_no)
    ids = {"wang": make_user((Role.RESPONDER, "town.02"))["id"],
           "elsewhere": make_user((Role.RESPONDER, "town.22"))["id"], "nobody": 999_999}
    head = as_role((Role.DEPARTMENT_HEAD, "industry.construction"), locale="en")
    answer = head.client.post(f"/tasks/{task.id}/delegate", data={
        "to": str(ids[who]), "reason": reason, "csrf_token": head.csrf()},
        follow_redirects=True)
    assert message in answer.get_data(as_text=True)
    with app.app_context():
        row = db.session.get(CaseTask, task.id)
        assert row.claimed_by_id is None and row.delegated_by_id is None


def test_responders_cannot_hand_tasks_over(app, accept_task, as_role, make_user):
    case_no = accept_task
    task = _task(app, case_no)
    wang = make_user((Role.RESPONDER, "town.02"))
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    assert f'data-delegate="{task.id}"' not in responder.text(f"/cases/{case_no}")
    answer = responder.post(f"/tasks/{task.id}/delegate", {"to": str(wang["id"]),
                                                          "reason": "x"})
    assert answer.status_code == 403


def test_followers_hear_of_each_step(app, accept_task, as_role, drive, people):
    case_no = accept_task
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    assert 'data-action="follow"' in auditor.text(f"/cases/{case_no}")
    assert auditor.post(f"/cases/{case_no}/follow", {"on": "1"}).status_code == 302
    assert 'data-action="unfollow"' in auditor.text(f"/cases/{case_no}")
    drive(case_no, people, steps=1)
    with app.app_context():
        notices = db.session.scalars(select(Notification).where(
            Notification.user_id == auditor.account["id"],
            Notification.kind == "case_step")).all()
        assert len(notices) == 1 and case_no in notices[0].title
    auditor.post(f"/cases/{case_no}/follow", {"on": "0"})
    drive(case_no, people, steps=1)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Notification).where(
            Notification.user_id == auditor.account["id"],
            Notification.kind == "case_step")) == 1


# ---------------------------------------------------------------- work-chat robots


class Robot:
    """A local HTTP server standing in for a group robot: keeps each request, answers like
    the real ones (200 with an errcode)."""

    def __init__(self, errcode: int = 0) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers["Content-Length"])
                robot.requests.append((self.path, json.loads(self.rfile.read(length))))
                body = json.dumps({"errcode": errcode, "errmsg": "ok" if not errcode
                                   else "invalid"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/robot/send?access_token=t0k"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def robots() -> Iterator[Callable[..., Robot]]:
    made: list[Robot] = []

    def make(errcode: int = 0) -> Robot:
        made.append(Robot(errcode))
        return made[-1]

    yield make
    for robot in made:
        robot.close()


def test_notices_reach_wecom_and_signed_dingtalk_groups_as_markdown(
        app, published, point, send, clock, robots):
    wecom, dingtalk = robots(), robots()
    settings = {"NOTIFY_WECOM_URL": wecom.url, "NOTIFY_DINGTALK_URL": dingtalk.url,
                "NOTIFY_DINGTALK_SECRET": "SEC-test-secret"}
    app.config.update(settings)
    try:
        point("GAS-MH-0201", "gas")
        case_no = send("gas", "ch4_lel", 60.0, "GAS-MH-0201")["case_no"]
        with app.app_context():
            queued = db.session.scalars(select(OutboundMessage)).all()
            assert {m.channel for m in queued} == {"wecom", "dingtalk"}
        deliver_outbound(app)
    finally:
        for key in settings:
            app.config[key] = ""
    with app.app_context():
        assert all(m.status == "sent" for m in db.session.scalars(select(OutboundMessage)))
    path, body = wecom.requests[0]
    assert body["msgtype"] == "markdown" and set(body) == {"msgtype", "markdown"}
    assert case_no in body["markdown"]["content"] and "橙色" in body["markdown"]["content"]
    path, body = dingtalk.requests[0]
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("新预警工单")
    assert case_no in body["markdown"]["text"]
    query = parse_qs(urlsplit(path).query)
    assert query["access_token"] == ["t0k"]
    timestamp = query["timestamp"][0]
    expected = base64.b64encode(hmac.new(b"SEC-test-secret",
                                         f"{timestamp}\nSEC-test-secret".encode(),
                                         hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]


def test_a_robot_refusal_is_a_failed_attempt(app, published, point, send, clock, robots):
    refusing = robots(errcode=310000)
    app.config["NOTIFY_DINGTALK_URL"] = refusing.url
    try:
        point("GAS-MH-0301", "gas")
        send("gas", "ch4_lel", 60.0, "GAS-MH-0301")
    finally:
        app.config["NOTIFY_DINGTALK_URL"] = ""
    with app.app_context():
        sent, failed = notify.deliver_pending(
            {"dingtalk": notify.DingTalkChannel(refusing.url)}, now=clock())
        assert sent == 0 and failed >= 1
        row = db.session.scalars(select(OutboundMessage)).first()
        assert row.status == "pending" and "refused" in row.last_error
