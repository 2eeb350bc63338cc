"""Operations and maintenance (Art 15), coverage (Art 12) and filing (Art 19)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import AuditRecord, MaintenanceRecord, Role, RuleFiling, User
from app.services import coverage, feed_intake, maintenance


def test_a_planned_window_silences_the_point_and_is_audited(
        app: Flask, as_role: Any, published: None, point: Callable[..., str],
        send: Callable[..., dict[str, Any]], clock: Any) -> None:
    point("GAS-M-1", "gas")
    admin = as_role((Role.TECH_ADMIN, "district"), locale="en")
    token = admin.csrf("/operations/maintenance")
    form = {"csrf_token": token, "point_code": "GAS-M-1", "kind": "planned",
            "performed_by": "维保公司", "starts_at": "2026-07-26T10:00",
            "ends_at": "2026-07-26T14:00", "work": "更换传感器", "result": "完成"}
    refused = admin.client.post("/operations/maintenance", data={**form, "ends_at": ""})
    assert refused.status_code == 422
    assert "A planned window needs its end." in refused.get_data(as_text=True)
    assert admin.client.post("/operations/maintenance", data=form).status_code == 302
    outcome = send("gas", "ch4_lel", 30.0, "GAS-M-1")
    assert outcome["disposition"] == "silenced" and outcome["case_no"] is None
    with app.app_context():
        row = db.session.scalar(select(MaintenanceRecord))
        assert row is not None and row.silence_id is not None
        record = db.session.scalar(select(AuditRecord).where(
            AuditRecord.action == "maintenance.record"))
        assert record is not None and record.after["point"] == "GAS-M-1"
    assert "更换传感器" in admin.client.get("/operations/maintenance").get_data(as_text=True)
    system = {**form, "point_code": "", "system": "MQTT broker", "kind": "repair",
              "ends_at": ""}
    assert admin.client.post("/operations/maintenance", data=system).status_code == 302


def test_account_lifecycle_lists_dormant_accounts_and_expiring_passwords(
        app: Flask, make_user: Callable[..., Any], clock: Any) -> None:
    old = make_user((Role.RESPONDER, "town.02"), username="dormant.one")
    viewer = make_user((Role.SECURITY_ADMIN, "district"), username="sec.viewer")
    with app.app_context():
        user = db.session.get(User, old["id"])
        assert user is not None
        user.last_login_at = clock() - timedelta(days=120)
        user.password_changed_at = clock() - timedelta(days=80)
        db.session.commit()
        actor = db.session.get(User, viewer["id"])
        lines = {(line.user.username, line.reason)
                 for line in maintenance.account_lifecycle(actor, clock())}
        assert ("dormant.one", "dormant") in lines
        assert ("dormant.one", "password_expiring") in lines
        assert not any(name == "sec.viewer" and reason == "dormant" for name, reason in lines)


def test_coverage_counts_registered_and_monitored_points(
        app: Flask, published: None, source_key: str, point: Callable[..., str],
        clock: Any) -> None:
    point("GAS-C-1", "gas")
    point("GAS-C-2", "gas")
    with app.app_context():
        from app.models import ApiKey

        key = db.session.scalar(select(ApiKey))
        assert key is not None
        feed_intake.heartbeat(key, ["GAS-C-1"], now=clock())
        [row] = [r for r in coverage.current(clock()) if r.scenario == "gas"]
        assert (row.registered, row.monitored, row.rate) == (2, 1, 0.5)
        assert coverage.snapshot(clock(), date(2026, 7, 26)) >= 1
        assert coverage.snapshot(clock(), date(2026, 7, 26)) >= 1  # same day: replaced
        assert coverage.trend(date(2026, 7, 1), date(2026, 7, 31), scenario="gas") == [
            (date(2026, 7, 26), 2, 1)]


def _docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


def test_units_file_rules_that_the_office_acknowledges(app: Flask, as_role: Any) -> None:
    document = _docx()
    unit = as_role((Role.DEPARTMENT_HEAD, "scenario.gas"), locale="en")
    token = unit.csrf("/operations/filings")
    with app.app_context():
        from app.services import org

        node_id = org.node_by_code("scenario.gas").id
    fake = unit.client.post("/operations/filings", data={
        "csrf_token": token, "node": str(node_id), "title": "制度",
        "file": (io.BytesIO(b"MZ\x90\x00 not a document"), "rules.pdf")},
        content_type="multipart/form-data")
    assert fake.status_code == 422
    assert "Only PDF or Word documents" in fake.get_data(as_text=True)
    done = unit.client.post("/operations/filings", data={
        "csrf_token": token, "node": str(node_id), "title": "燃气场景运行制度",
        "file": (io.BytesIO(document), "制度.docx")}, content_type="multipart/form-data")
    assert done.status_code == 302
    with app.app_context():
        filing = db.session.scalar(select(RuleFiling))
        assert filing is not None and filing.status == "submitted"
        assert filing.content_type.endswith("wordprocessingml.document")
    office = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    listing = office.client.get("/operations/filings").get_data(as_text=True)
    assert "燃气场景运行制度" in listing and "Awaiting acknowledgement" in listing
    other = as_role((Role.DEPARTMENT_HEAD, "scenario.elevator"), locale="en")
    assert "燃气场景运行制度" not in other.client.get("/operations/filings").get_data(
        as_text=True)
    assert other.client.post(f"/operations/filings/{filing.id}/acknowledge", data={
        "csrf_token": other.csrf("/operations/filings")}).status_code == 403
    office.client.post(f"/operations/filings/{filing.id}/acknowledge",
                       data={"csrf_token": office.csrf("/operations/filings"), "note": "已备案"})
    with app.app_context():
        filing = db.session.get(RuleFiling, filing.id)
        assert filing is not None and filing.status == "acknowledged"
    download = unit.client.get(f"/operations/filings/{filing.id}/file")
    assert download.status_code == 200 and download.data == document


