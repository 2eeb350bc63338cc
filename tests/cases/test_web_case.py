"""Task forms, the case page, evidence, replay and notifications, through the web pages."""

from __future__ import annotations

import io
import re
import struct
import zlib

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Attachment, Case, CaseComment, Notification, Role, User
from app.services import cases
from cases_fixtures import ready_task


def png() -> bytes:
    """A valid one-pixel PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def multipart(fields: dict[str, str], files: dict[str, tuple[bytes, str, str]]
              ) -> dict[str, object]:
    """A multipart body built here: the test client would spool a large one to a temporary
    file that it never closes."""
    boundary = "----casepagetest"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             .encode() for k, v in fields.items()]
    for name, (content, filename, kind) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: {kind}\r\n\r\n'.encode()
                     + content + b"\r\n")
    return {"data": b"".join(parts) + f"--{boundary}--\r\n".encode(),
            "content_type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture
def responder(as_role, people):
    """The responder of the case: the one who accepts it keeps its next steps."""
    browser = as_role((Role.RESPONDER, "town.02"), locale="en")
    people["responder"] = browser.account["id"]
    return browser


def _field_error(page: str, field: str) -> str:
    assert f'id="{field}-error"' in page, f"no message next to {field}"
    return page.split(f'id="{field}-error"')[1].split("</p>")[0]


def _value(page: str, field: str) -> str:
    found = re.search(rf'name="{field}"[^>]*value="([^"]*)"', page) or re.search(
        rf'name="{field}"[^>]*>([^<]*)</textarea>', page)
    assert found, f"no input {field}"
    return found.group(1)


def test_the_accept_form_is_built_from_the_bpmn(app, open_case, as_role):
    task = ready_task(app, open_case())
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    page = responder.text(f"/tasks/{task.id}")
    assert "<h1>接单受理" in page
    assert '<label for="f-eta_minutes">' in page and 'type="number"' in page
    assert 'name="accepted" value="true"' in page  # yes / no as labelled radios
    assert '<textarea id="f-accept_note" name="accept_note"' in page
    assert "确认由本人负责处置并接单" in page  # the step's documentation
    assert 'name="csrf_token"' in page and 'enctype="multipart/form-data"' in page


def test_the_dispose_form_lists_the_standard_measures(app, open_case, responder, clock):
    case_no = open_case(60.0, stop_at="Activity_dispose")  # orange
    task = ready_task(app, case_no)
    page = responder.text(f"/tasks/{task.id}")
    measures = page.split('class="measures"')[1].split("</fieldset>")[0]
    assert "通知燃气企业关闭上游阀门" in measures  # orange and red
    assert "通报消防救援支队" not in measures  # red only, and for the business administrator
    assert 'type="datetime-local"' in page and 'value="2026-07-26T10:' in page  # Beijing time
    assert '<option value="none" selected>' in page  # the BPMN default
    response = responder.post(f"/tasks/{task.id}", data={
        "on_site_at": "2026-07-26T10:20", "situation": "已到场复测, 开井通风。",
        "escalate": "none", "measure": ["retest_gas", "ventilate"]})
    assert response.status_code == 302
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        state = case.state["data"] if "data" in case.state else case.state
        assert "2026-07-26T10:20:00+08:00" in str(state)
        body = db.session.scalar(select(CaseComment.body).where(CaseComment.case_id == case.id))
    assert "到场用便携式检测仪复测" in body and "开启窨井盖自然通风" in body


def test_a_rejected_form_keeps_what_was_typed(app, open_case, responder):
    task = ready_task(app, open_case(stop_at="Activity_dispose"))
    response = responder.post(f"/tasks/{task.id}", data={
        "on_site_at": "yesterday", "situation": "", "escalate": "medium",
        "escalate_reason": "需要街镇配合封路", "measure": ["retest_gas"]})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Please correct the marked fields." in page
    assert "Required." in _field_error(page, "situation")
    assert "Enter a date and time" in _field_error(page, "on_site_at")
    assert 'aria-invalid="true" aria-describedby="situation-error"' in page
    assert _value(page, "on_site_at") == "yesterday"
    assert _value(page, "escalate_reason") == "需要街镇配合封路"
    assert '<option value="medium" selected>' in page
    assert re.search(r'value="retest_gas" checked', page)
    assert ready_task(app, task.case.case_no).element_id == "Activity_dispose"  # nothing moved


def test_engine_messages_are_translated(app, open_case, as_role):
    task = ready_task(app, open_case())
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    page = responder.post(f"/tasks/{task.id}", data={"eta_minutes": "soon"}).get_data(
        as_text=True)
    assert "Enter a whole number." in _field_error(page, "eta_minutes")


def test_completed_by_someone_else_says_so(app, open_case, as_role, clock):
    task = ready_task(app, open_case())
    me = as_role((Role.RESPONDER, "town.02"), locale="en")
    assert me.get(f"/tasks/{task.id}").status_code == 200  # the form is open on my phone
    colleague = as_role((Role.RESPONDER, "town.02"), username="wang")
    with app.app_context():
        cases.complete(db.session.get(User, colleague.account["id"]), task.id,
                       {"accepted": True}, now=clock())
        db.session.commit()
    response = me.post(f"/tasks/{task.id}", data={"accepted": "true", "accept_note": "收到"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "already completed by 测试wang" in page
    assert f'href="/cases/{task.case.case_no}" data-action="reload"' in page
    # Opening it again shows who did it instead of a form.
    again = me.text(f"/tasks/{task.id}")
    assert "This task was completed by 测试wang" in again and 'data-action="complete"' not in again


def test_evidence_upload_is_stored_and_named_in_the_field(app, open_case, responder):
    case_no = open_case(stop_at="Activity_cancel_warning")
    task = ready_task(app, case_no)
    page = responder.text(f"/tasks/{task.id}")
    assert 'name="evidence__upload"' in page and "When a warning may be cancelled" in page
    response = responder.post(f"/tasks/{task.id}", data={
        "cancel_cause": "hazard_removed", "cancelled_at": "2026-07-26T11:00",
        "evidence__upload": (io.BytesIO(png()), "现场.png", "image/png")},
        content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        attachment = db.session.scalar(select(Attachment))
        assert attachment.filename == "现场.png" and attachment.content_type == "image/png"
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        assert f"'evidence': '{attachment.id}'" in str(case.state)
        attachment_id = attachment.id
    case_page = responder.text(f"/cases/{case_no}")
    assert f'/cases/{case_no}/attachments/{attachment_id}' in case_page
    download = responder.get(f"/cases/{case_no}/attachments/{attachment_id}")
    assert download.status_code == 200 and download.data == png()
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    # A photo displays in the browser, under the server's name for it.
    disposition = download.headers["Content-Disposition"]
    assert disposition == f"inline; filename=evidence-{attachment_id}.png"


@pytest.mark.parametrize(("content", "name", "kind", "message"), [
    (b"MZ\x90\x00 not an image", "photo.png", "image/png", "Only JPEG, PNG, WebP"),
    (b"plain text", "notes.txt", "text/plain", "Only JPEG, PNG, WebP"),
    (png() + b"\x00" * (10 * 1024 * 1024), "huge.png", "image/png", "larger than 10 MB"),
])
def test_a_wrong_or_oversized_upload_is_refused(app, open_case, responder, content, name, kind,
                                                message):
    task = ready_task(app, open_case(stop_at="Activity_cancel_warning"))
    response = responder.client.post(f"/tasks/{task.id}", **multipart(
        {"csrf_token": responder.csrf(), "cancel_cause": "hazard_removed",
         "cancel_note": "已排除", "cancelled_at": "2026-07-26T11:00"},
        {"evidence__upload": (content, name, kind)}))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in _field_error(page, "evidence")
    assert _value(page, "cancel_note") == "已排除"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Attachment)) == 0


def test_an_upload_over_the_request_limit_is_refused_with_a_message(app, open_case, as_role):
    task = ready_task(app, open_case(stop_at="Activity_cancel_warning"))
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    response = responder.client.post(f"/tasks/{task.id}", **multipart(
        {"csrf_token": responder.csrf()},
        {"evidence__upload": (b"\x00" * (32 * 1024 * 1024), "x.png", "image/png")}))
    assert response.status_code == 413
    assert "The upload or request is too large." in response.get_data(as_text=True)


def test_evidence_must_belong_to_the_case(app, open_case, responder):
    task = ready_task(app, open_case(stop_at="Activity_cancel_warning"))
    page = responder.post(f"/tasks/{task.id}", data={
        "cancel_cause": "hazard_removed", "cancelled_at": "2026-07-26T11:00",
        "evidence": "999"}).get_data(as_text=True)
    assert "Choose evidence attached to this case." in _field_error(page, "evidence")


def test_a_form_without_csrf_token_is_refused(app, open_case, as_role):
    case_no = open_case()
    task = ready_task(app, case_no)
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    for path, data in ((f"/tasks/{task.id}", {"accepted": "true"}),
                       (f"/tasks/{task.id}/claim", {}),
                       (f"/cases/{case_no}/comments", {"body": "x"}),
                       ("/notifications/read", {})):
        response = responder.client.post(path, data=data)
        assert response.status_code == 400, path
        assert "security token is missing" in response.get_data(as_text=True)
    assert ready_task(app, case_no).claimed_by_id is None


def test_a_task_of_another_role_is_read_only(app, open_case, as_role):
    task = ready_task(app, open_case(stop_at="Activity_verify"))
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    page = responder.text(f"/tasks/{task.id}")
    assert "You can read this task but not complete it" in page
    assert re.search(r"<fieldset\s+disabled", page)
    assert responder.post(f"/tasks/{task.id}", data={"verified": "approve"}).status_code == 403


def test_the_case_page(app, open_case, as_role, people, drive):
    case_no = open_case()
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    drive(case_no, {**people, "responder": responder.account["id"]},
          stop_at="Activity_scenario_feedback")
    page = responder.text(f"/cases/{case_no}")
    summary = page.split('id="summary"')[1].split("</section>")[0]
    for text in ("燃气", "窨井", "陆家嘴街道", "GAS-MH-0001", "建交委", "燃气 v1",
                 'data-loop="small"', "Small loop", "Being handled"):
        assert text in summary, text
    assert re.search(r"Opened</dt><dd>2026-07-26 10:00", summary)  # Beijing time
    alerts = page.split('id="alerts"')[1].split("</section>")[0]
    assert "30.0 %LEL" in alerts and "2026-07-26 10:00:00" in alerts
    timeline = page.split('id="timeline"')[1].split("</section>")[0]
    assert "Case opened at level" in timeline and "Completed: 接单受理" in timeline
    assert "Waiting for: 燃气专项反馈" in timeline
    assert "到场时间" in timeline  # the values entered in the form
    assert timeline.index("Case opened") < timeline.index("Completed: 接单受理")
    diagram = page.split('id="diagram"')[1].split("</section>")[0]
    assert 'data-xml-url="/handbooks/versions/' in diagram and "scenario_gas.bpmn" in diagram
    marks = re.search(r"data-marks='([^']+)'", diagram).group(1).replace("&#34;", '"')
    assert '"active": ["Activity_scenario_feedback"]' in marks
    assert "Activity_dispose" in marks.split('"completed"')[1].split("]")[0]
    everything = responder.text(f"/cases/{case_no}?events=all")
    assert everything.count('class="event') > page.count('class="event')


def test_overdue_steps_are_marked_on_the_diagram(app, open_case, as_role, clock):
    case_no = open_case()
    clock.advance(minutes=45)
    page = as_role((Role.RESPONDER, "town.02")).text(f"/cases/{case_no}")
    marks = re.search(r"data-marks='([^']+)'", page).group(1).replace("&#34;", '"')
    assert '"overdue": ["Activity_call_accept"]' in marks
    sub = as_role((Role.RESPONDER, "town.02")).text(f"/cases/{case_no}?diagram=common_accept")
    assert "common_accept.bpmn" in sub and '"overdue": ["Activity_accept"]' in sub.replace(
        "&#34;", '"')


def test_comments_and_attachments_on_the_case_page(app, open_case, as_role):
    case_no = open_case()
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    assert responder.post(f"/cases/{case_no}/comments", data={"body": "已联系燃气公司"}
                          ).status_code == 302
    empty = responder.post(f"/cases/{case_no}/comments", data={"body": "  "},
                           follow_redirects=True)
    assert "Comment not saved" in empty.get_data(as_text=True)
    token = responder.csrf(f"/cases/{case_no}")
    upload = responder.client.post(f"/cases/{case_no}/attachments", data={
        "csrf_token": token, "file": (io.BytesIO(b"%PDF-1.4 ..."), "记录.pdf",
                                      "application/pdf")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "Attached 记录.pdf." in upload.get_data(as_text=True)
    token = responder.csrf(f"/cases/{case_no}")
    refused = responder.client.post(f"/cases/{case_no}/attachments", data={
        "csrf_token": token, "file": (io.BytesIO(b"<svg/>"), "x.svg",
                                      "image/svg+xml")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "File not attached: Only JPEG, PNG, WebP" in refused.get_data(as_text=True)
    page = responder.text(f"/cases/{case_no}")
    assert "已联系燃气公司" in page.split('id="comments"')[1]
    assert "Comment:" in page and "Evidence attached:" in page
    # An auditor reads but does not write.
    auditor = as_role((Role.AUDITOR, "district"))
    assert 'id="comment-body"' not in auditor.text(f"/cases/{case_no}")
    assert auditor.post(f"/cases/{case_no}/comments", data={"body": "x"}).status_code == 403


def test_attachments_of_other_cases_are_out_of_reach(app, open_case, as_role, point, send):
    case_no = open_case()
    point("GAS-MH-0099", "gas", town="town.22")
    other = send("gas", "ch4_lel", 30.0, "GAS-MH-0099")["case_no"]
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == other))
        writer = db.session.scalar(select(User).where(User.username == "hb.writer"))
        stored = Attachment(case_id=case.id, uploaded_by_id=writer.id, filename="x.png",
                            content_type="image/png", size=3, sha256="0" * 64, content=b"abc",
                            created_at=case.opened_at)
        db.session.add(stored)
        db.session.commit()
        stored_id = stored.id
    responder = as_role((Role.RESPONDER, "town.02"))
    assert responder.get(f"/cases/{other}/attachments/{stored_id}").status_code == 403
    assert responder.get(f"/cases/{case_no}/attachments/{stored_id}").status_code == 404
    assert responder.get("/cases/NO-SUCH-CASE").status_code == 404
    assert responder.get("/tasks/999999").status_code == 404


def test_the_auditor_replays_and_steps_through(app, open_case, as_role, people, drive):
    case_no = open_case()
    drive(case_no, people)  # to the end
    auditor = as_role((Role.AUDITOR, "district"), locale="en")
    case_page = auditor.text(f"/cases/{case_no}")
    assert f'href="/cases/{case_no}/replay"' in case_page
    page = auditor.text(f"/cases/{case_no}/replay")
    assert 'class="ok" data-check="replay"' in page and "The process has ended." in page
    assert 'class="ok" data-check="chain"' in page
    steps = len(re.findall(r'<li class="event kind-', page))
    assert "Step 1 of" in page and 'data-action="next"' in page
    second = auditor.text(f"/cases/{case_no}/replay?step=2")
    assert 'data-action="previous"' in second and f"Step 2 of {steps}" in second
    accept = next(i for i in range(1, steps + 1) if 'data-element="Activity_accept"' in
                  auditor.text(f"/cases/{case_no}/replay?step={i}").split(
                      'class="current-step"')[1][:200])
    at_accept = auditor.text(f"/cases/{case_no}/replay?step={accept}").replace("&#34;", '"')
    assert "common_accept.bpmn" in at_accept and '"active": ["Activity_accept"]' in at_accept
    # Tampering with the history shows, even by someone able to drop the database's guard.
    with app.app_context():
        import sqlalchemy as sa

        from app.models import CaseEvent

        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(sa.text("DROP TRIGGER case_event_no_update ON case_event"))
        else:
            db.session.execute(sa.text("DROP TRIGGER case_event_no_update"))
        event = db.session.scalar(select(CaseEvent).join(Case).where(
            Case.case_no == case_no, CaseEvent.seq == 3))
        event.actor_name = "someone"
        db.session.commit()
    assert "The hash chain breaks at event #3" in auditor.text(f"/cases/{case_no}/replay")
    responder = as_role((Role.RESPONDER, "town.02"))
    assert responder.get(f"/cases/{case_no}/replay").status_code == 403


def test_notifications_badge_list_and_read(app, open_case, as_role, people):
    head = as_role((Role.DEPARTMENT_HEAD, "industry.construction"), locale="en")
    case_no = open_case()
    with app.app_context():
        user = db.session.get(User, head.account["id"])
        case = db.session.scalar(select(Case).where(Case.case_no == case_no))
        for kind in ("reminder", "escalation"):
            db.session.add(Notification(user_id=user.id, case_id=case.id, kind=kind,
                                        title=f"{kind} · {case_no}", body="请及时处理",
                                        created_at=case.opened_at))
        opened = case.opened_at
        db.session.commit()
        ids = list(db.session.scalars(select(Notification.id).where(
            Notification.user_id == user.id).order_by(Notification.id)))
    home = head.text("/")
    unread = int(re.search(r'data-unread="(\d+)"', home).group(1))
    assert unread == len(ids) >= 2
    page = head.text("/notifications")
    assert f"{unread} unread" in page and f'href="/cases/{case_no}"' in page
    assert head.post("/notifications/read", data={"id": str(ids[0])}).status_code == 302
    assert f'data-unread="{unread - 1}"' in head.text("/")
    assert head.post("/notifications/read").status_code == 302
    assert "data-unread" not in head.text("/")
    assert "0 unread" in head.text("/notifications")
    # Nobody marks another person's notifications.
    other = as_role((Role.DEPARTMENT_HEAD, "industry.construction"))
    with app.app_context():
        db.session.add(Notification(user_id=other.account["id"], kind="push", title="t",
                                    body="", created_at=opened))
        db.session.commit()
    head.post("/notifications/read")
    assert 'data-unread="1"' in other.text("/")
