"""The monitoring-point registry (Art 8): import with a dry run and per-row errors (all rows or
none), export that imports again unchanged, edit and retire, audited."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from flask import Flask
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditRecord, MonitoringPoint, Role

HEADER = ("code,name,scenario,object_type,town,address,lat,lon,datum,source_system,"
          "owner_unit,maintenance_unit,installed_on,report_interval_s\n")
GOOD = ("GAS-R-1,燃气井1,gas,manhole,town.02,浦东大道1号,31.23,121.52,GCJ-02,燃气物联网,"
        "燃气公司,维保公司,2025-03-01,600\n"
        "GAS-R-2,燃气井2,gas,manhole,town.22,,31.20,121.60,wgs84,,,,,\n")


def _upload(admin: Any, content: bytes, name: str, apply: bool = False) -> Any:
    data: dict[str, Any] = {"csrf_token": admin.csrf("/operations/points/import"),
                            "file": (io.BytesIO(content), name)}
    if apply:
        data["apply"] = "1"
    return admin.client.post("/operations/points/import", data=data,
                             content_type="multipart/form-data")


def _count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(MonitoringPoint)) or 0)


def test_import_checks_every_row_and_writes_all_or_nothing(app: Flask, as_role: Any) -> None:
    admin = as_role((Role.BUSINESS_ADMIN, "district"), locale="en")
    answer = _upload(admin, (HEADER + GOOD).encode(), "points.csv")
    assert answer.status_code == 200
    assert "Dry run: 2 points would be created and 0 updated" in answer.get_data(as_text=True)
    assert _count(app) == 0
    bad = (HEADER + GOOD + "GAS-R-1,again,gas,,town.02,,31.2,121.5,,,,,,\n"
           "bad code!,x,nowhere,,town.99,,99,121.5,mercator,,,,03/01/2025,5\n")
    answer = _upload(admin, bad.encode(), "points.csv", apply=True)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 422 and "nothing was written" in text
    for problem in ("Appears twice in the file.", "Letters, digits, _ . - only.",
                    "Choose one of your scenarios.", "Say which datum: GCJ-02 or WGS-84.",
                    "Enter a date (YYYY-MM-DD).", "Whole seconds between 10 and 604800"):
        assert problem in text, problem
    assert _count(app) == 0
    answer = _upload(admin, (HEADER + GOOD).encode(), "points.csv", apply=True)
    assert "2 points created and 0 updated" in answer.get_data(as_text=True)
    with app.app_context():
        point = db.session.scalar(select(MonitoringPoint).where(MonitoringPoint.code == "GAS-R-1"))
        assert point is not None
        assert (point.datum, point.report_interval_s, str(point.installed_on)) == (
            "gcj02", 600, "2025-03-01")
        assert point.node.code == "town.02" and point.owner_department.code == "construction"
        assert db.session.scalar(select(AuditRecord.after).where(
            AuditRecord.action == "point.import"))["created"] == 2


def test_export_imports_again_unchanged_as_csv_and_xlsx(app: Flask, as_role: Any) -> None:
    admin = as_role((Role.BUSINESS_ADMIN, "district"), locale="en")
    _upload(admin, (HEADER + GOOD).encode(), "points.csv", apply=True)
    exported = admin.client.get("/operations/points/export.csv")
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.get_data().decode("utf-8-sig"))))
    assert [r["code"] for r in rows] == ["GAS-R-1", "GAS-R-2"]
    assert rows[0]["town"] == "town.02" and rows[1]["datum"] == "wgs84"
    xlsx = admin.client.get("/operations/points/export.xlsx").get_data()
    sheet = load_workbook(io.BytesIO(xlsx)).worksheets[0]
    assert [c.value for c in sheet[1]][:3] == ["code", "name", "scenario"]
    answer = _upload(admin, xlsx, "points.xlsx", apply=True)
    assert "0 points created and 2 updated" in answer.get_data(as_text=True)
    book = Workbook()
    book.active.append(["code", "name"])
    book.active.append(["X-1", "无城镇"])
    out = io.BytesIO()
    book.save(out)
    answer = _upload(admin, out.getvalue(), "points.xlsx")
    assert answer.status_code == 422
    assert "Give the code of a street, town or village" in answer.get_data(as_text=True)
    assert _upload(admin, b"PK\x03\x04garbage", "x.xlsx").status_code == 422


def test_edit_and_retire_a_point(app: Flask, as_role: Any, point: Callable[..., str]) -> None:
    point("GAS-E-1", "gas")
    with app.app_context():
        point_id = db.session.scalar(select(MonitoringPoint.id))
    admin = as_role((Role.BUSINESS_ADMIN, "scenario.gas"), locale="en")
    url = f"/operations/points/{point_id}"
    form = {"csrf_token": admin.csrf(url), "name": "新名称", "town": "town.22", "lat": "31.2",
            "lon": "121.6", "datum": "wgs84", "report_interval_s": "300"}
    assert admin.client.post(url, data={**form, "lat": "40"}).status_code == 422
    assert admin.client.post(url, data=form).status_code == 302
    with app.app_context():
        found = db.session.get(MonitoringPoint, point_id)
        assert found is not None
        assert (found.name, found.node.code, found.report_interval_s) == ("新名称", "town.22", 300)
        record = db.session.scalar(select(AuditRecord).where(AuditRecord.action == "point.update"))
        assert record is not None and record.before["town"] == "town.02"
    admin.client.post(f"{url}/retire", data={"csrf_token": form["csrf_token"]})
    with app.app_context():
        found = db.session.get(MonitoringPoint, point_id)
        assert found is not None and found.retired_at is not None and not found.active
    other = as_role((Role.BUSINESS_ADMIN, "scenario.elevator"), locale="en")
    assert other.client.get(url).status_code == 404  # outside their scope
    listing = admin.client.get("/operations/points?retired=1").get_data(as_text=True)
    assert "GAS-E-1" in listing


def test_importing_a_flagged_point_moves_its_alerts_and_open_case(
        app: Flask, as_role: Any, published: None, send: Callable[..., dict[str, Any]]) -> None:
    from app.models import Alert, Case, CaseTask

    first = send("gas", "ch4_lel", 30.0, "GAS-R-2")
    send("gas", "ch4_lel", 31.0, "GAS-R-2")
    assert first["unknown_point"] and first["case_no"]
    admin = as_role((Role.BUSINESS_ADMIN, "district"), locale="en")
    dry = _upload(admin, (HEADER + GOOD).encode(), "points.csv").get_data(as_text=True)
    assert ("2 alerts and these open cases would move to them, with their towns: "
            f"{first['case_no']}.") in dry
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.case_no == first["case_no"]))
        assert case is not None and case.point_id is None  # a dry run moves nothing
    done = _upload(admin, (HEADER + GOOD).encode(), "points.csv", apply=True)
    assert "2 alerts and these open cases moved to them" in done.get_data(as_text=True)
    with app.app_context():
        point = db.session.scalar(select(MonitoringPoint).where(MonitoringPoint.code == "GAS-R-2"))
        case = db.session.scalar(select(Case).where(Case.case_no == first["case_no"]))
        assert point is not None and case is not None
        assert (case.point_id, case.node_id, case.scope_path) == (
            point.id, point.node_id, point.node.path)
        assert point.node.code == "town.22"
        assert {t.scope_path for t in db.session.scalars(
            select(CaseTask).where(CaseTask.case_id == case.id))} == {point.node.path}
        assert set(db.session.scalars(select(Alert.point_id).where(
            Alert.point_code == "GAS-R-2"))) == {point.id}
        after = db.session.scalar(select(AuditRecord.after).where(
            AuditRecord.action == "point.import"))
        assert after["moved"] == {"GAS-R-2": {"alerts_moved": 2,
                                              "cases_moved": [first["case_no"]]}}


def test_the_search_box_matches_wildcards_literally(app: Flask, as_role: Any,
                                                     point: Callable[..., str]) -> None:
    point("GAS-W1", "gas")
    admin = as_role((Role.BUSINESS_ADMIN, "scenario.gas"), locale="en")
    assert "GAS-W1" in admin.client.get("/operations/points?q=W1").get_data(as_text=True)
    for typed in ("%25", "_", "GAS_W1", "%5C"):
        page = admin.client.get(f"/operations/points?q={typed}").get_data(as_text=True)
        assert "GAS-W1" not in page, typed
