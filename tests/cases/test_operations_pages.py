"""Operations pages: silences, API keys, unknown points, and what every page must hold."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiKey, AuditRecord, Case, MonitoringPoint, Role, Silence
from app.services import api_keys, org
from app.services.api_keys import ApiKeyRefused


def _audit(app, action: str) -> list[AuditRecord]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditRecord).where(AuditRecord.action == action)))
        db.session.expunge_all()
        return rows


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _field_error(page: str, field: str) -> str:
    assert f'id="{field}-error"' in page, f"no message next to {field}"
    return page.split(f'id="{field}-error"')[1].split("</p>")[0]


SILENCE = {"scenario": "gas", "point_code": "GAS-MH-0001", "indicator": "ch4_lel",
           "starts_at": "2026-07-26T10:00", "ends_at": "2026-07-26T14:00",
           "reason": "燃气公司计划检修, 窨井开盖作业"}


def test_a_silence_holds_alerts_back_and_lists_them_until_ended(app, published, point, send,
                                                                 as_role):
    point("GAS-MH-0001", "gas")
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas")
    assert admin.post("/operations/silences", data=SILENCE).status_code == 302
    with app.app_context():
        silence = db.session.scalar(select(Silence))
        assert (silence.starts_at.hour, silence.ends_at.hour) == (2, 6)  # Beijing time in
        assert silence.indicator == "ch4_lel"
        silence_id = silence.id
    [created] = _audit(app, "silence.create")
    assert created.after["point"] == "GAS-MH-0001"
    held = send("gas", "ch4_lel", 30.0, "GAS-MH-0001")
    assert held["disposition"] == "silenced" and held["case_no"] is None
    assert _count(app, Case) == 0
    page = admin.text("/operations/silences")
    active = page.split('class="list responsive silences-active"')[1].split("</table>")[0]
    assert "燃气公司计划检修" in active and f"/operations/silences/{silence_id}/end" in active
    alerts = page.split('class="list responsive silenced-alerts"')[1].split("</table>")[0]
    assert "GAS-MH-0001" in alerts and "30.0" in alerts
    assert admin.post(f"/operations/silences/{silence_id}/end").status_code == 302
    [ended] = _audit(app, "silence.end")
    assert ended.object_id == str(silence_id)
    assert send("gas", "ch4_lel", 31.0, "GAS-MH-0001")["disposition"] == "opened"
    past = admin.text("/operations/silences").split('silences-past"')[1]
    assert "燃气公司计划检修" in past


BAD_SILENCES = [
    ({"reason": ""}, "reason", "Required."),
    ({"point_code": " "}, "point_code", "Required."),
    ({"starts_at": "tomorrow"}, "starts_at", "Enter a date and time"),
    ({"starts_at": "0001-01-01T00:00"}, "starts_at", "Enter a date and time"),
    ({"ends_at": "2026-07-26T09:00"}, "ends_at", "Must be after the start."),
    ({"ends_at": "2026-08-05T10:00"}, "ends_at", "at most 7 days"),
    ({"indicator": "wind_speed"}, "indicator", "is not one of"),
    ({"scenario": "bridge"}, "scenario", "Choose one of your scenarios."),
]


def test_a_bad_silence_shows_the_field_and_writes_nothing(app, published, as_role):
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas", locale="en")
    for change, field, message in BAD_SILENCES:
        response = admin.post("/operations/silences", data={**SILENCE, **change})
        assert response.status_code == 422, change
        page = response.get_data(as_text=True)
        assert message in _field_error(page, field), change
        if field != "reason":  # what was typed stays
            assert f"{SILENCE['reason']}</textarea>" in page
    assert _count(app, Silence) == 0 and _audit(app, "silence.create") == []


def test_auditors_see_silences_but_cannot_set_or_end_them(app, published, as_role, make_user,
                                                          clock):
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas")
    admin.post("/operations/silences", data=SILENCE)
    with app.app_context():
        silence_id = db.session.scalar(select(Silence.id))
    auditor = as_role(Role.AUDITOR, node="district")
    page = auditor.text("/operations/silences")
    assert "燃气公司计划检修" in page and "/end" not in page and 'name="reason"' not in page
    assert auditor.post("/operations/silences", data=SILENCE).status_code == 403
    assert auditor.post(f"/operations/silences/{silence_id}/end").status_code == 403
    other = as_role(Role.BUSINESS_ADMIN, node="industry.emergency")
    assert "燃气公司计划检修" not in other.text("/operations/silences")
    assert other.post(f"/operations/silences/{silence_id}/end").status_code == 403
    assert _count(app, Silence) == 1 and _audit(app, "silence.end") == []
    responder = as_role(Role.RESPONDER, node="town.02")
    assert responder.get("/operations/silences").status_code == 403


KEY = {"name": "视频 AI 识别平台", "source_type": "video_ai", "scenarios": ["gas", "bridge"]}


def test_an_api_key_is_shown_once_and_a_revoked_key_is_refused(app, as_role, clock):
    admin = as_role(Role.TECH_ADMIN, node="district", locale="en")
    response = admin.post("/operations/api-keys", data=KEY)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    secret = re.search(r'value="(pk_[^"]+)"', page).group(1)
    assert page.count(secret) == 1 and "It is shown only this once" in page
    with app.app_context():
        key = api_keys.authenticate(f"Bearer {secret}", now=clock())
        assert key.scenarios == ["bridge", "gas"] and key.source_type == "video_ai"
        key_id = key.id
        db.session.commit()
    listing = admin.text("/operations/api-keys")
    assert secret not in listing and f"pk_{secret.split('_')[1]}_" in listing
    assert admin.post(f"/operations/api-keys/{key_id}/revoke").status_code == 302
    with app.app_context():
        with pytest.raises(ApiKeyRefused) as refused:
            api_keys.authenticate(f"Bearer {secret}", now=clock())
        assert refused.value.status == 401 and refused.value.code == "api_key_revoked"
    assert [r.object_id for r in _audit(app, "apikey.issue")] == [str(key_id)]
    assert [r.object_id for r in _audit(app, "apikey.revoke")] == [str(key_id)]
    assert "badge warn" in admin.text("/operations/api-keys")


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"name": ""}, "name", "Required."),
    ({"source_type": "fax"}, "source_type", "Choose a source type."),
    ({"scenarios": []}, "scenarios", "Choose at least one scenario."),
    ({"scenarios": ["gas", "moon"]}, "scenarios", "moon"),
])
def test_a_bad_api_key_request_shows_the_field_and_writes_nothing(app, as_role, change, field,
                                                                  message):
    admin = as_role(Role.TECH_ADMIN, node="district", locale="en")
    response = admin.post("/operations/api-keys", data={**KEY, **change})
    assert response.status_code == 422
    assert message in _field_error(response.get_data(as_text=True), field)
    assert _count(app, ApiKey) == 0 and _audit(app, "apikey.issue") == []


def test_only_key_managers_reach_the_api_keys(app, as_role):
    admin = as_role(Role.BUSINESS_ADMIN, node="district")
    assert admin.get("/operations/api-keys").status_code == 403
    assert admin.post("/operations/api-keys", data=KEY).status_code == 403
    assert _count(app, ApiKey) == 0


def test_unknown_points_are_listed_and_registered(app, published, send, as_role):
    send("gas", "ch4_lel", 30.0, "GAS-NEW-9")
    send("gas", "ch4_lel", 31.0, "GAS-NEW-9")
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas", locale="en")
    listing = admin.text("/operations/unknown-points")
    row = listing.split("GAS-NEW-9")[1].split("</tr>")[0]
    assert '<td data-label="Alerts" class="num">2</td>' in row
    form = "/operations/unknown-points/register?scenario=gas&code=GAS-NEW-9"
    assert 'name="lat"' in admin.text(form)
    bad = admin.post(form, data={"name": "", "lat": "39.9", "lon": "east"})
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert "Required." in _field_error(page, "name")
    assert "Required." in _field_error(page, "node")
    assert "Enter a number." in _field_error(page, "lon")
    outside = admin.post(form, data={"name": "新窨井", "node": _node(app, "town.02"),
                                     "lat": "39.9", "lon": "116.4"})
    assert outside.status_code == 422
    assert "within Pudong" in _field_error(outside.get_data(as_text=True), "lat")
    assert _count(app, MonitoringPoint) == 0 and _audit(app, "point.register") == []
    good = admin.post(form, data={"name": "东方路窨井", "node": _node(app, "town.02"),
                                  "lat": "31.22", "lon": "121.53", "object_type": "manhole"})
    assert good.status_code == 302
    with app.app_context():
        point = db.session.scalar(select(MonitoringPoint).where(
            MonitoringPoint.code == "GAS-NEW-9"))
        assert point.node.code == "town.02" and point.owner_department.code == "construction"
        assert (point.lat, point.lon, point.scenario) == (31.22, 121.53, "gas")
    [record] = _audit(app, "point.register")
    assert record.after["code"] == "GAS-NEW-9"
    after = admin.text("/operations/unknown-points")
    assert "Point GAS-NEW-9 registered in 陆家嘴街道." in after
    assert "GAS-NEW-9" not in after.split('class="list responsive unknown-points"')[1]


def _node(app, code: str) -> str:
    with app.app_context():
        return str(org.node_by_code(code).id)


def test_unknown_points_in_scope_only_and_read_only_for_auditors(app, published, send, as_role):
    send("gas", "ch4_lel", 30.0, "GAS-NEW-9")
    form = "/operations/unknown-points/register?scenario=gas&code=GAS-NEW-9"
    auditor = as_role(Role.AUDITOR, node="district")
    assert "GAS-NEW-9" in auditor.text("/operations/unknown-points")
    assert auditor.get(form).status_code == 403
    assert auditor.post(form, data={"name": "x", "node": _node(app, "town.02"),
                                    "lat": "31.2", "lon": "121.5"}).status_code == 403
    other = as_role(Role.BUSINESS_ADMIN, node="industry.emergency")
    assert "GAS-NEW-9" not in other.text("/operations/unknown-points")
    assert other.get(form).status_code == 403
    assert _count(app, MonitoringPoint) == 0


def test_the_overview_shows_what_each_role_may_open(app, published, as_role):
    admin = as_role(Role.BUSINESS_ADMIN, node="scenario.gas")
    page = admin.text("/operations/")
    assert "/operations/overdue" in page and "/operations/quality" in page
    assert "/operations/api-keys" not in page
    tech = as_role(Role.TECH_ADMIN, node="district")
    keys_only = tech.text("/operations/")
    assert "/operations/api-keys" in keys_only and "/operations/overdue" not in keys_only
    assert as_role(Role.RESPONDER, node="town.02").get("/operations/").status_code == 403


PAGES = ["/operations/", "/operations/overdue", "/operations/quality", "/operations/silences",
         "/operations/unknown-points", "/operations/api-keys",
         "/operations/unknown-points/register?scenario=gas&code=GAS-NEW-9"]


def test_every_page_works_on_a_phone_and_protects_its_forms(app, published, send, as_role):
    send("gas", "ch4_lel", 30.0, "GAS-NEW-9")
    admin = as_role((Role.BUSINESS_ADMIN, "district"), (Role.TECH_ADMIN, "district"))
    for path in PAGES:
        response = admin.get(path)
        assert response.status_code == 200, path
        page = response.get_data(as_text=True)
        assert 'name="viewport"' in page
        for table in re.findall(r'<table class="list[^"]*responsive.*?</table>', page, re.S):
            cells = re.findall(r"<td(?![^>]*colspan)[^>]*>", table)
            assert all("data-label=" in c for c in cells), (path, cells)
        forms = re.findall(r'<form method="post".*?</form>', page, re.S)
        assert all('name="csrf_token"' in f for f in forms), path
        for label in re.findall(r'<label for="([^"]+)"', page):
            assert f'id="{label}"' in page, (path, label)
