"""Each role's first day: what a person sees on the pages of a case they work on."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, MonitoringPoint, Role, User
from app.services import cases
from cases_fixtures import fill_form, ready_task


def _visible(page: str) -> str:
    """The text a person reads: no tags, scripts or attribute values."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_a_closed_case_says_closed_and_its_outcome(app, open_case, as_role):
    case_no = open_case(stop_at=None)
    with app.app_context():
        assert db.session.scalar(select(Case.status).where(Case.case_no == case_no)) == "closed"
    reader = as_role((Role.BUSINESS_ADMIN, "scenario.gas"))
    summary = reader.text(f"/cases/{case_no}").split('id="summary"')[1].split("</section>")[0]
    text = _visible(summary)
    assert "已结案" in text and "确认预警" in text
    assert "confirmed" not in text and "closed" not in text
    assert re.search(r"结案时间 \d{4}-\d\d-\d\d", text)  # the label of the date only
    auditor = as_role((Role.AUDITOR, "district"))
    replay = _visible(auditor.text(f"/cases/{case_no}/replay"))
    assert "已结案" in replay and "结案时间" not in replay.split("回放")[1][:40]


def test_the_responder_keeps_the_next_step_of_the_case(app, open_case, as_role, clock):
    case_no = open_case()
    responder = as_role((Role.RESPONDER, "town.02"), username="li")
    colleague = as_role((Role.RESPONDER, "town.02"), username="zhao")
    accept = ready_task(app, case_no)
    assert responder.post(f"/tasks/{accept.id}", data={
        "accepted": "true", "eta_minutes": "20", "accept_note": "收到"}).status_code == 302
    dispose = ready_task(app, case_no)
    assert dispose.element_id == "Activity_dispose"
    assert dispose.claimed_by_id == responder.account["id"]  # no second claim needed
    page = responder.text(f"/tasks/{dispose.id}")
    assert 'data-action="complete"' in page and 'data-action="claim"' not in page
    # Colleagues see whose it is and cannot take it until it is released.
    assert "测试li" in colleague.text(f"/tasks/{dispose.id}")
    assert colleague.post(f"/tasks/{dispose.id}/claim").status_code == 409
    assert responder.post(f"/tasks/{dispose.id}/release").status_code == 302
    assert ready_task(app, case_no).claimed_by_id is None


def test_forms_start_from_what_the_case_already_knows(app, open_case, as_role, people, drive,
                                                      clock):
    case_no = open_case(60.0, stop_at="Activity_accept")  # orange: valve closure measures
    responder = as_role((Role.RESPONDER, "town.02"))
    mine = {**people, "responder": responder.account["id"]}
    drive(case_no, mine, stop_at="Activity_dispose")
    dispose = ready_task(app, case_no)
    assert responder.post(f"/tasks/{dispose.id}", data={
        "on_site_at": "2026-07-26T10:20", "situation": "已到场复测, 开井通风。",
        "escalate": "none", "measure": ["retest_gas", "ventilate"]}).status_code == 302
    nxt = ready_task(app, case_no)
    assert nxt.element_id == "Activity_scenario_feedback"
    page = responder.text(f"/tasks/{nxt.id}")
    if 'class="measures"' in page:  # the same checklist comes back ticked
        assert re.search(r'value="retest_gas" checked', page)
        assert re.search(r'value="ventilate" checked', page)
    with app.app_context():
        fields = cases.case_engine.load(db.session.get(Case, nxt.case_id)).compiled.form_fields(
            nxt.process_id, nxt.element_id)
        cases.complete(db.session.get(User, responder.account["id"]), nxt.id,
                       fill_form(fields), now=clock())
        db.session.commit()
    drive(case_no, mine, stop_at="Activity_feedback")
    feedback = ready_task(app, case_no)
    assert feedback.element_id == "Activity_feedback"
    page = responder.text(f"/tasks/{feedback.id}")
    assert re.search(r'name="arrived_at"[^>]*value="2026-07-26T10:20"', page)
    measures = page.split('name="measures_taken"')[1].split("</textarea>")[0]
    assert "到场用便携式检测仪复测" in measures and "开启窨井盖自然通风" in measures


def test_the_verifier_sees_what_to_judge(app, open_case, as_role, people, drive, clock):
    case_no = open_case(stop_at="Activity_feedback")
    feedback = ready_task(app, case_no)
    with app.app_context():
        fields = cases.case_engine.load(db.session.get(Case, feedback.case_id)).compiled \
            .form_fields(feedback.process_id, feedback.element_id)
        form = fill_form(fields, {"measures_taken": "关阀、通风、复测合格", "people_on_site": 3})
        cases.complete(db.session.get(User, people["responder"]), feedback.id, form,
                       now=clock())
        db.session.commit()
    verify = ready_task(app, case_no)
    assert verify.element_id == "Activity_verify"
    head = as_role((Role.DEPARTMENT_HEAD, "industry.construction"))
    page = head.text(f"/tasks/{verify.id}")
    judged = _visible(page.split('id="to-verify"')[1].split("</section>")[0])
    assert "闭环反馈" in judged and "关阀、通风、复测合格" in judged and "到场处置人数" in judged
    assert "到场处置" in judged  # the disposal step's answers too


def test_the_assessment_shows_the_readings_as_a_series(app, open_case, as_role, send, clock):
    case_no = open_case(stop_at="Activity_assessment")
    for value in (35.0, 42.0):
        clock.advance(minutes=2)
        send("gas", "ch4_lel", value, "GAS-MH-0001")
    task = ready_task(app, case_no)
    assert task.element_id == "Activity_assessment"
    admin = as_role((Role.BUSINESS_ADMIN, "scenario.gas"))
    page = admin.text(f"/tasks/{task.id}")
    readings = page.split('id="readings"')[1].split("</section>")[0]
    assert "<svg" in readings and "<polyline" in readings
    for value in ("30.0", "35.0", "42.0"):
        assert value in readings
    assert "GAS-MH-0001" in readings and "%LEL" in readings


def test_the_assessment_shows_where_the_point_is(app, open_case, as_role):
    case_no = open_case(stop_at="Activity_assessment")
    task = ready_task(app, case_no)
    admin = as_role((Role.BUSINESS_ADMIN, "scenario.gas"))

    def location() -> str:
        return admin.text(f"/tasks/{task.id}").split('id="location"')[1].split("</section>")[0]

    def place(**values: object) -> None:
        with app.app_context():
            point = db.session.scalar(select(MonitoringPoint).where(
                MonitoringPoint.code == "GAS-MH-0001"))
            for name, value in values.items():
                setattr(point, name, value)
            db.session.commit()

    # Before the point's coordinates are known: what and where it belongs, no map.
    place(lat=None, lon=None)
    before = location()
    assert "GAS-MH-0001" in before and "尚未登记" in before and "<svg" not in before
    place(lat=31.238, lon=121.505, datum="wgs84", address="银城中路")
    after = location()
    assert "31.23800, 121.50500 (WGS-84)" in after and "银城中路" in after
    spot = re.search(r'<circle class="here" cx="([\d.]+)" cy="([\d.]+)"', after)
    town = re.search(r'<circle class="town" cx="([\d.]+)" cy="([\d.]+)" r="2"/>'
                     r'<text[^>]*>陆家嘴', after)
    assert spot and town and spot.groups() == town.groups()  # at 陆家嘴's centre, as given


def test_a_read_only_task_form_has_no_submit_button(app, open_case, as_role):
    task = ready_task(app, open_case())
    page = as_role((Role.AUDITOR, "district")).text(f"/tasks/{task.id}")
    assert re.search(r"<fieldset\s+disabled", page)
    assert 'data-action="complete"' not in page


def test_responders_do_not_see_the_designer_and_handbooks_in_the_menu(app, as_role):
    nav = as_role((Role.RESPONDER, "town.02")).text("/").split('class="nav"')[1].split("</nav>")[0]
    assert "流程设计" not in nav and "指挥手册" not in nav
    head = as_role((Role.DEPARTMENT_HEAD, "scenario.gas")).text("/")
    assert "指挥手册" in head.split('class="nav"')[1].split("</nav>")[0]


def test_a_refusal_says_whose_scope_it_is_and_whom_to_ask(app, open_case, as_role):
    case_no = open_case()
    other_town = as_role((Role.RESPONDER, "town.22"))
    response = other_town.get(f"/cases/{case_no}")
    assert response.status_code == 403
    text = _visible(response.get_data(as_text=True))
    assert "陆家嘴街道" in text  # whose it is
    assert "安全管理员" in text  # whom to ask for access


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    body, kind = response.get_data(), response.mimetype
    response.close()
    assert response.status_code == 200 and body.startswith(b"\x00\x00\x01\x00")
    assert kind in ("image/x-icon", "image/vnd.microsoft.icon")


def test_issued_api_key_has_a_copy_button_and_a_warning_asks_first(app, published, as_role):
    tech = as_role((Role.TECH_ADMIN, "district"))
    page = tech.post("/operations/api-keys", data={
        "name": "测试系统", "source_type": "iot", "scenarios": ["gas"]}).get_data(as_text=True)
    assert 'data-copy="secret"' in page
    weather = as_role((Role.DEPARTMENT_HEAD, "industry.meteorology"))
    index = weather.text("/operations/")
    assert re.search(r'data-action="draft-warning" data-confirm="[^"]+"', index)


def test_the_audit_trail_reads_in_chinese(app, published, as_role, make_user, clock):
    tech = as_role((Role.TECH_ADMIN, "district"))
    tech.post("/operations/api-keys", data={"name": "测试系统", "source_type": "iot",
                                            "scenarios": ["gas"]})
    auditor = as_role((Role.AUDIT_ADMIN, "district"))
    page = auditor.text("/admin/audit")
    options = page.split('id="action"')[1].split("</select>")[0]
    for code in ("handbook.publish", "handbook.submit", "apikey.issue", "apikey.revoke"):
        assert f'value="{code}"' in options
    table = _visible(page.split("<tbody>")[1].split("</tbody>")[0])
    assert "API 密钥" in table or "API密钥" in table
    assert "\\u" not in page and "{&#34;" not in page and '{"' not in table
    for raw in ("api_key", "handbook_version", "apikey.issue", "in_review", " ok "):
        assert raw not in table, raw
    published_rows = _visible(auditor.text("/admin/audit?action=handbook.publish"))
    assert "已发布" in published_rows


def test_form_errors_are_codes_worded_once_for_the_page_and_the_api(app, open_case, make_user,
                                                                    as_role):
    from helpers import Api

    task = ready_task(app, open_case())
    account = make_user((Role.RESPONDER, "town.02"))
    api = Api(app.test_client())
    assert api.login(account["username"]).status_code == 200
    answer = api.post(f"/tasks/{task.id}/complete", {"eta_minutes": "soon"})
    assert answer.status_code == 422
    details = answer.get_json()["details"]
    assert details["eta_minutes"] == ["请输入整数。"]
    page = as_role((Role.RESPONDER, "town.02")).post(
        f"/tasks/{task.id}", data={"eta_minutes": "soon"}).get_data(as_text=True)
    assert "请输入整数。" in page.split('id="eta_minutes-error"')[1].split("</p>")[0]


@pytest.mark.parametrize(("role", "node", "acts"), [
    (Role.RESPONDER, "town.02", True), (Role.RESPONDER, "town.22", None),
    (Role.AUDITOR, "district", False), (Role.BUSINESS_ADMIN, "scenario.gas", False)])
def test_the_page_and_the_api_show_one_case_view(app, open_case, make_user, role, node, acts):
    from helpers import Api, Browser

    case_no = open_case()
    account = make_user((role, node))
    client = app.test_client()
    assert Browser(client).login(account["username"]).status_code == 302
    api = Api(client)
    detail = api.get(f"/cases/{case_no}")
    page = client.get(f"/cases/{case_no}")
    if acts is None:  # outside the reader's scope: refused by both
        assert detail.status_code == page.status_code == 403
        return
    body = detail.get_json()
    assert [t["can_act"] for t in body["tasks"]] == [acts]
    html = page.get_data(as_text=True)
    assert ('class="button primary" href="/tasks/' in html) is acts
    assert len(body["alerts"]) == html.split('id="alerts"')[1].count("<tr") - 1


def test_a_form_without_an_evidence_field_still_takes_photos(app, open_case, as_role, people,
                                                            drive):
    from io import BytesIO

    from test_web_case import png

    from app.models import Attachment

    responder = as_role((Role.RESPONDER, "town.02"))
    case_no = open_case(stop_at="Activity_accept")
    drive(case_no, {**people, "responder": responder.account["id"]}, stop_at="Activity_dispose")
    task = ready_task(app, case_no)
    page = responder.text(f"/tasks/{task.id}")
    assert 'name="evidence__extra"' in page
    response = responder.post(f"/tasks/{task.id}", data={
        "on_site_at": "2026-07-26T10:20", "situation": "已到场复测, 开井通风。",
        "escalate": "none", "evidence__extra": (BytesIO(png()), "井口.png", "image/png")},
        content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Attachment.filename)) == "井口.png"
    bad = ready_task(app, case_no)
    refused = responder.post(f"/tasks/{bad.id}", data={
        "evidence__extra": (BytesIO(b"MZ not a photo"), "x.png", "image/png")},
        content_type="multipart/form-data")
    assert refused.status_code == 422
    assert "JPEG" in refused.get_data(as_text=True).split('id="evidence__extra-error"')[1][:200]


def test_irreversible_actions_ask_first(app, published, as_role, make_user):
    """Revoking a key or a role, deactivating or resetting an account ask before they submit,
    naming what they act on."""
    tech = as_role((Role.TECH_ADMIN, "district"))
    tech.post("/operations/api-keys", data={"name": "测试系统", "source_type": "iot",
                                            "scenarios": ["gas"]})
    keys = tech.text("/operations/api-keys")
    assert re.search(r'data-confirm="吊销 API 密钥“测试系统”[^"]*"', keys)
    target = make_user((Role.RESPONDER, "town.02"), username="someone")
    admin = as_role(Role.SYSTEM_ADMIN)
    form = admin.text(f"/admin/users/{target['id']}")
    assert re.search(r'data-confirm="停用测试someone[^"]*"', form)
    security = as_role(Role.SECURITY_ADMIN)
    roles = security.text(f"/admin/users/{target['id']}")
    assert re.search(r'data-confirm="撤销测试someone在[^"]*"', roles)
