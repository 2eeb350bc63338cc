"""The figure, report and bulletin pages, their drill-down links, and the XLSX and PDF files."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from app.extensions import db
from app.models import PlatformNode, Report, Role
from app.services import reports

JULY_FIRST = datetime(2026, 7, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 August, Shanghai


@pytest.fixture
def one_case(app, published, point, send, clock) -> str:
    clock.now = datetime(2026, 7, 20, 2, 0, tzinfo=UTC)
    return str(send("gas", "ch4_lel", 30.0, point("W-GAS-1", "gas"))["case_no"])


def _links(html: str) -> list[str]:
    return [m.replace("&amp;", "&") for m in re.findall(r'href="(/cases/\?[^"]*)"', html)]


def test_the_figures_page_links_every_figure_to_the_case_list(as_role, one_case):
    office = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    page = office.client.get("/reports/?period=2026-07")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Cases opened" in html and 'data-figure="accept_on_time_rate"' in html
    links = _links(html)
    opened = parse_qs(urlsplit(links[0]).query)
    assert opened == {"opened_from": ["2026-07-01"], "opened_to": ["2026-07-31"]}
    assert any(parse_qs(urlsplit(u).query).get("town") == ["town.02"] for u in links)
    assert any(parse_qs(urlsplit(u).query).get("scenario") == ["gas"] for u in links)
    data = json.loads(re.search(r'id="chart-data">(.*?)</script>', html, re.S).group(1))
    assert data["scenarios"][0]["value"] == 1
    assert parse_qs(urlsplit(data["scenarios"][0]["url"]).query)["scenario"] == ["gas"]
    assert sum(x["value"] for x in data["levels"]) == 1


def test_a_bad_period_or_scope_is_named(as_role):
    office = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    bad = office.client.get("/reports/?period=2026-13")
    assert bad.status_code == 422
    assert "YYYY-MM" in bad.get_data(as_text=True)
    unknown = office.client.get("/reports/?scope=nowhere")
    assert unknown.status_code == 422
    assert "No such platform" in unknown.get_data(as_text=True)


def test_a_town_sees_its_own_figures_only(as_role):
    town = as_role((Role.BUSINESS_ADMIN, "town.02"), locale="en")
    own = town.client.get("/reports/?period=2026-07")
    assert own.status_code == 200
    assert town.client.get("/reports/?scope=district&period=2026-07").status_code == 403
    assert town.client.get("/reports/bulletin?period=2026-07").status_code == 403


def test_the_figures_workbook_has_every_table(as_role, one_case):
    office = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    answer = office.client.get("/reports/figures.xlsx?period=2026-07")
    assert answer.status_code == 200
    book = load_workbook(io.BytesIO(answer.data))
    names = book.sheetnames
    assert names[0] == "Figures" and "By Street or town" in names and "Trend" in names
    figures_sheet = book["Figures"]
    rows = {r[0]: r[1] for r in figures_sheet.iter_rows(min_row=4, values_only=True)}
    assert rows["Cases opened"] == "1"


def _issued_report(app, make_user) -> tuple[int, dict[str, int]]:
    people = {"writer": make_user((Role.BUSINESS_ADMIN, "district"))["id"],
              "head": make_user((Role.DEPARTMENT_HEAD, "district"))["id"]}
    with app.app_context():
        from app.models import User

        reports.generate_due(JULY_FIRST)
        report = db.session.scalar(select(Report).join(PlatformNode).where(
            PlatformNode.code == "district"))
        writer, head = db.session.get(User, people["writer"]), db.session.get(User, people["head"])
        reports.write(writer, report.id, {"work": "本月共处置燃气预警一起。",
                                          "problems": "接单偏慢。", "next_steps": "加强值守。"},
                      now=JULY_FIRST)
        reports.submit(writer, report.id, now=JULY_FIRST)
        reports.approve(head, report.id, comment="同意", now=JULY_FIRST)
        db.session.commit()
        return report.id, people


def test_the_pdf_is_an_official_document_with_its_text(app, as_role, one_case, make_user):
    report_id, _people = _issued_report(app, make_user)
    office = as_role((Role.DISTRICT_OFFICE, "district"))
    answer = office.client.get(f"/reports/{report_id}.pdf")
    assert answer.status_code == 200 and answer.data.startswith(b"%PDF-")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.data)).pages)
    text = re.sub(r"\s+", "", text)
    with app.app_context():
        report = db.session.get(Report, report_id)
        assert re.sub(r"\s+", "", report.title) in text
        assert report.doc_no in text
    assert "本月共处置燃气预警一起" in text and "加强值守" in text
    assert "工作情况" in text and "存在问题" in text and "下步工作" in text
    assert "接单及时率" in text  # a table of figures, in Chinese


def test_writing_and_approving_on_the_report_page(app, as_role, make_user, clock):
    clock.now = JULY_FIRST
    with app.app_context():
        reports.generate_due(JULY_FIRST)
        db.session.commit()
        report_id = db.session.scalar(select(Report.id).join(PlatformNode).where(
            PlatformNode.code == "district"))
    writer = as_role((Role.BUSINESS_ADMIN, "district"), locale="en")
    token = writer.csrf(f"/reports/{report_id}")
    too_long = writer.client.post(f"/reports/{report_id}/narrative", data={
        "csrf_token": token, "work": "x" * 5001, "problems": "p", "next_steps": "n"})
    assert too_long.status_code == 422
    assert "At most 5000 characters." in too_long.get_data(as_text=True)
    saved = writer.client.post(f"/reports/{report_id}/narrative", data={
        "csrf_token": token, "work": "w", "problems": "p", "next_steps": "n"})
    assert saved.status_code == 302
    assert writer.client.post(f"/reports/{report_id}/submit",
                              data={"csrf_token": token}).status_code == 302
    head = as_role((Role.DEPARTMENT_HEAD, "district"), locale="en")
    page = head.client.get(f"/reports/{report_id}").get_data(as_text=True)
    assert "Approve and issue" in page
    token = head.csrf(f"/reports/{report_id}")
    assert head.client.post(f"/reports/{report_id}/approve",
                            data={"csrf_token": token, "comment": "ok"}).status_code == 302
    issued = head.client.get(f"/reports/{report_id}").get_data(as_text=True)
    assert 'data-status="issued"' in issued and "intact" in issued
    again = writer.client.post(f"/reports/{report_id}/narrative", data={
        "csrf_token": writer.csrf(f"/reports/{report_id}"), "work": "changed"})
    assert again.status_code == 409
    assert "can no longer change" in again.get_data(as_text=True)


def test_the_bulletin_ranks_with_the_formula_on_the_page(as_role, one_case):
    office = as_role((Role.DISTRICT_OFFICE, "district"), locale="en")
    page = office.client.get("/reports/bulletin?period=2026-07")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Score = (30×Accepted on time + 30×Closed on time + 25×Closed-loop rate + " \
           "15×(1 − Share overdue of open cases))" in html
    assert 'data-ranking="department"' in html and 'data-ranking="town"' in html
    assert "陆家嘴" in html
    sheet = office.client.get("/reports/bulletin.xlsx?period=2026-07")
    assert load_workbook(io.BytesIO(sheet.data)).sheetnames[-1] == "Formula"


def test_the_bulletin_pdf_carries_the_formula_and_the_ranking(as_role, one_case):
    office = as_role((Role.DISTRICT_OFFICE, "district"))
    answer = office.client.get("/reports/bulletin.pdf?period=2026-07")
    assert answer.status_code == 200
    text = re.sub(r"\s+", "", "".join(
        page.extract_text() for page in PdfReader(io.BytesIO(answer.data)).pages))
    assert "区级通报" in text and "得分=" in text and "陆家嘴街道" in text
