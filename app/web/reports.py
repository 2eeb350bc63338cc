"""Figures, monthly and annual reports, and the district bulletin (Art 11, 16, 17): pages with
charts whose every figure leads to the case list with the same filter, and XLSX/PDF files."""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers.response import Response as BaseResponse

from app.extensions import db
from app.i18n import _l
from app.models import NARRATIVE_SECTIONS, Report
from app.services import figures, report_export, reports
from app.services.errors import DomainError
from app.services.figures import Period, Scope
from app.services.permissions import require
from app.timezone import local_zone
from app.web.util import me, now

bp = Blueprint("reports", __name__, url_prefix="/reports")

CASE_LIST = "/cases/"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def cases_url(params: dict[str, str]) -> str:
    """The case list with a filter (the shared query parameters of the case list)."""
    return f"{CASE_LIST}?{urlencode(params)}" if params else CASE_LIST


def _scope_of(content: dict[str, Any]) -> Scope:
    raw = content["scope"]
    return figures.scope_for(("department:" + raw["code"]) if raw["kind"] == "department"
                             else raw["code"])


def _period_of(content: dict[str, Any]) -> Period:
    raw = content["period"]
    return Period(raw["kind"], date.fromisoformat(raw["start"]), date.fromisoformat(raw["end"]))


def _bucket_period(bucket: str) -> Period:
    if len(bucket) == 7:
        return Period.month(int(bucket[:4]), int(bucket[5:]))
    day = date.fromisoformat(bucket)
    return Period("range", day, date.fromordinal(day.toordinal() + 1))


def view_model(content: dict[str, Any]) -> dict[str, Any]:
    """What the figure templates show, with the case-list link of every figure."""
    scope, period = _scope_of(content), _period_of(content)
    periods = {"current": period, "previous": period.previous(),
               "last_year": period.same_last_year()}
    names = figures.scenario_names()
    comparison = []
    for figure in figures.FIGURES:
        cells = {which: {"text": report_export.format_value(figure.kind,
                                                            content[which].get(figure.key)),
                         "url": cases_url(figures.drill_params(scope, p, figure.key))}
                 for which, p in periods.items()}
        comparison.append({"key": figure.key, "label": figure.label, "cells": cells})
    breakdowns = []
    for by, entries in content["breakdowns"].items():
        rows = []
        for e in entries:
            rows.append({"name": e["name"], "code": e["code"], "cells": [
                {"key": k, "text": report_export.format_figure(k, e["values"].get(k)),
                 "value": e["values"].get(k),
                 "url": cases_url(figures.drill_params(scope, period, k, e["drill"]))}
                for k in report_export.BREAKDOWN_FIGURES]})
        _heat(rows)
        breakdowns.append({"by": by, "label": figures.GROUPING_LABELS[by], "rows": rows})
    trend = content["trend"]
    chart = {
        "trend": {"labels": [t["bucket"] for t in trend],
                  "series": [{"name": str(_l("Cases opened")),
                              "data": [t["opened"] for t in trend]},
                             {"name": str(_l("Cases closed")),
                              "data": [t["closed"] for t in trend]},
                             {"name": str(_l("False alarms and device faults")),
                              "data": [t["false_alarms"] for t in trend]}],
                  "urls": [cases_url(figures.drill_params(scope, _bucket_period(t["bucket"]),
                                                          "opened")) for t in trend]},
        "levels": [{"name": str(label), "value": content["levels"].get(lv, 0),
                    "color": report_export.LEVEL_COLOURS[lv],
                    "url": cases_url({**figures.drill_params(scope, period, "opened"),
                                      "level": lv})}
                   for lv, label in report_export.LEVEL_LABELS.items()],
        "scenarios": [{"name": names.get(code, code), "value": n,
                       "url": cases_url({**figures.drill_params(scope, period, "opened"),
                                         "scenario": code})}
                      for code, n in sorted(content["alerts"]["scenario"].items(),
                                            key=lambda i: -i[1])],
    }
    return {"scope": scope, "period": period, "comparison": comparison,
            "breakdowns": breakdowns, "chart_json": json.dumps(chart, ensure_ascii=False),
            "content": content, "scenario_names": names,
            "level_labels": report_export.LEVEL_LABELS,
            "source_labels": report_export.SOURCE_LABELS,
            "breakdown_keys": report_export.BREAKDOWN_FIGURES,
            "figure_labels": {f.key: f.label for f in figures.FIGURES},
            "opened_url": cases_url(figures.drill_params(scope, period, "opened"))}


def _heat(rows: list[dict[str, Any]]) -> None:
    """Shade each cell by its place between the column's lowest and highest value (rates:
    the worse, the darker; counts of trouble likewise)."""
    good_high = {"accept_on_time_rate", "arrive_on_time_rate", "feedback_on_time_rate",
                 "close_on_time_rate", "closure_rate"}
    for column in range(len(report_export.BREAKDOWN_FIGURES)):
        values = [r["cells"][column]["value"] for r in rows
                  if r["cells"][column]["value"] is not None]
        if not values:
            continue
        low, high = min(values), max(values)
        for r in rows:
            cell = r["cells"][column]
            if cell["value"] is None or high == low:
                cell["heat"] = 0
                continue
            share = (cell["value"] - low) / (high - low)
            if cell["key"] in good_high:
                share = 1 - share
            cell["heat"] = round(share * 4)


def _period_arg() -> Period:
    return Period.parse(request.args.get("period"), now=now())


def _scope_arg() -> Scope:
    actor = me()
    raw = request.args.get("scope")
    scope = figures.scope_for(raw) if raw else reports.default_scope(actor)
    reports.require_scope(actor, scope)
    return scope


def _download(data: bytes, mimetype: str, name: str) -> Response:
    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename={name}"
    return response


def _document_html(title: str, doc_no: str | None, issued: str, content: dict[str, Any],
                   narrative: dict[str, str] | None) -> str:
    names = figures.scenario_names()
    return render_template(
        "reports/document.html", title=title, doc_no=doc_no, issued=issued,
        narrative=narrative, sections=[(s, reports.SECTION_LABELS[s]) for s in
                                       NARRATIVE_SECTIONS],
        tables=report_export.tables(content, names),
        charts=report_export.charts(content, names), intro=None)


# ---------------------------------------------------------------------------------------------
# Figures of any scope and period


@bp.get("/")
@login_required
def figures_page() -> str:
    scope, period = _scope_arg(), _period_arg()
    content = reports.compose(scope, period, now=now())
    return render_template("reports/figures.html", choices=reports.scope_choices(me()),
                           **view_model(content))


def _figures_title(scope: Scope, period: Period) -> str:
    return str(_l("Figures of %(scope)s, %(period)s", scope=scope.name, period=period.label))


@bp.get("/figures.xlsx")
@login_required
def figures_xlsx() -> Response:
    scope, period = _scope_arg(), _period_arg()
    content = reports.compose(scope, period, now=now())
    title = _figures_title(scope, period)
    data = report_export.xlsx(title, report_export.tables(content, figures.scenario_names()))
    return _download(data, XLSX_TYPE, f"figures-{period.code}.xlsx")


@bp.get("/figures.pdf")
@login_required
def figures_pdf() -> Response:
    scope, period = _scope_arg(), _period_arg()
    content = reports.compose(scope, period, now=now())
    html = _document_html(_figures_title(scope, period), None,
                          now().astimezone(local_zone()).date().isoformat(), content, None)
    return _download(report_export.pdf(html), "application/pdf", f"figures-{period.code}.pdf")


# ---------------------------------------------------------------------------------------------
# Monthly and annual reports


@bp.get("/list")
@login_required
def report_list() -> str:
    require(me(), "report.view")
    return render_template("reports/list.html", reports=reports.visible_reports(me()),
                           kinds=reports.KIND_LABELS, statuses=reports.STATUS_LABELS)


def _report_page(report: Report, status: int = 200,
                 problems: dict[str, list[str]] | None = None,
                 draft: dict[str, str] | None = None) -> tuple[str, int]:
    actor = me()
    content = reports.content_of(report, now=now())
    return render_template(
        "reports/report.html", report=report, kinds=reports.KIND_LABELS,
        statuses=reports.STATUS_LABELS,
        sections=[(s, reports.SECTION_LABELS[s]) for s in NARRATIVE_SECTIONS],
        narrative=draft if draft is not None else (report.narrative or {}),
        problems=problems or {},
        may_write=report.status == "draft" and reports.may(actor, "report.write", report),
        may_submit=report.status == "draft" and reports.may(actor, "report.write", report),
        may_review=report.status == "submitted" and reports.may(actor, "report.approve",
                                                                 report)
        and report.written_by_id != actor.id,
        intact=reports.verify(report) if report.status == "issued" else None,
        **view_model(content)), status


@bp.get("/<int:report_id>")
@login_required
def report_page(report_id: int) -> tuple[str, int]:
    return _report_page(reports.get_report(me(), report_id))


def _act(report_id: int, action: Any, done: str) -> BaseResponse | tuple[str, int]:
    try:
        action()
    except DomainError as exc:
        db.session.rollback()
        if exc.status in (403, 404):
            raise
        report = reports.get_report(me(), report_id)
        flash(str(exc.message), "error")
        draft = {s: request.form.get(s, "") for s in NARRATIVE_SECTIONS} \
            if "work" in request.form else None
        return _report_page(report, exc.status, exc.details, draft)
    db.session.commit()
    flash(done, "success")
    return redirect(url_for("reports.report_page", report_id=report_id))


@bp.post("/<int:report_id>/narrative")
@login_required
def save_narrative(report_id: int) -> BaseResponse | tuple[str, int]:
    narrative = {s: request.form.get(s, "") for s in NARRATIVE_SECTIONS}
    return _act(report_id, lambda: reports.write(me(), report_id, narrative, now=now()),
                _("The narrative is saved."))


@bp.post("/<int:report_id>/submit")
@login_required
def submit(report_id: int) -> BaseResponse | tuple[str, int]:
    return _act(report_id, lambda: reports.submit(me(), report_id, now=now()),
                _("The report is sent for approval."))


@bp.post("/<int:report_id>/approve")
@login_required
def approve(report_id: int) -> BaseResponse | tuple[str, int]:
    comment = request.form.get("comment", "")
    return _act(report_id,
                lambda: reports.approve(me(), report_id, comment=comment, now=now()),
                _("The report is issued."))


@bp.post("/<int:report_id>/return")
@login_required
def return_report(report_id: int) -> BaseResponse | tuple[str, int]:
    reason = request.form.get("comment", "")
    return _act(report_id,
                lambda: reports.return_report(me(), report_id, reason=reason, now=now()),
                _("The report is returned to its writer."))


@bp.get("/<int:report_id>.xlsx")
@login_required
def report_xlsx(report_id: int) -> Response:
    report = reports.get_report(me(), report_id)
    content = reports.content_of(report, now=now())
    data = report_export.xlsx(report.title,
                              report_export.tables(content, figures.scenario_names()))
    return _download(data, XLSX_TYPE, f"report-{report.id}.xlsx")


@bp.get("/<int:report_id>.pdf")
@login_required
def report_pdf(report_id: int) -> Response:
    report = reports.get_report(me(), report_id)
    content = reports.content_of(report, now=now())
    moment = report.issued_at or now()
    html = _document_html(report.title, report.doc_no,
                          moment.astimezone(local_zone()).date().isoformat(), content,
                          report.narrative or {})
    return _download(report_export.pdf(html), "application/pdf", f"report-{report.id}.pdf")


# ---------------------------------------------------------------------------------------------
# The district bulletin


def _bulletin_rows(period: Period) -> dict[str, list[dict[str, Any]]]:
    district = figures.scope_for("district")
    ranked = reports.bulletin(me(), period, now=now())
    out: dict[str, list[dict[str, Any]]] = {}
    for by, entries in ranked.items():
        out[by] = [{"rank": e.rank, "name": e.name, "score": e.score,
                    "url": cases_url(figures.drill_params(district, period, "opened",
                                                          e.drill)),
                    "cells": [{"text": report_export.format_figure(k, e.values.get(k)),
                               "url": cases_url(figures.drill_params(district, period, k,
                                                                     e.drill))}
                              for k, _w, _l in figures.ASSESSMENT_WEIGHTS]}
                   for e in entries]
    return out


def _bulletin_tables(rows: dict[str, list[dict[str, Any]]]) -> list[report_export.Table]:
    header = [str(_l("Rank")), str(_l("Unit")), str(_l("Score"))] + [
        str(figures.FIGURES_BY_KEY[k].label) for k, _w, _l2 in figures.ASSESSMENT_WEIGHTS]
    return [report_export.Table(str(figures.GROUPING_LABELS[by]), header,
                                [[r["rank"] or "—", r["name"],
                                  "—" if r["score"] is None else r["score"]]
                                 + [c["text"] for c in r["cells"]] for r in entries])
            for by, entries in rows.items()]


def formula_text() -> str:
    terms = [f"{w}×" + (str(_l("(1 − %(figure)s)", figure=figures.FIGURES_BY_KEY[k].label))
                        if lower else str(figures.FIGURES_BY_KEY[k].label))
             for k, w, lower in figures.ASSESSMENT_WEIGHTS]
    return str(_l("Score = (%(terms)s) ÷ the sum of the weights of the figures the unit has "
                  "× 100", terms=" + ".join(terms)))


@bp.get("/bulletin")
@login_required
def bulletin() -> str:
    period = _period_arg()
    return render_template("reports/bulletin.html", period=period,
                           rows=_bulletin_rows(period), formula=formula_text(),
                           columns=[figures.FIGURES_BY_KEY[k].label
                                    for k, _w, _l2 in figures.ASSESSMENT_WEIGHTS],
                           labels=figures.GROUPING_LABELS)


@bp.get("/bulletin.xlsx")
@login_required
def bulletin_xlsx() -> Response:
    period = _period_arg()
    title = str(_l("District bulletin, %(period)s", period=period.label))
    tables = _bulletin_tables(_bulletin_rows(period))
    tables.append(report_export.Table(str(_l("Formula")), [str(_l("Formula"))],
                                      [[formula_text()]]))
    return _download(report_export.xlsx(title, tables), XLSX_TYPE,
                     f"bulletin-{period.code}.xlsx")


@bp.get("/bulletin.pdf")
@login_required
def bulletin_pdf() -> Response:
    period = _period_arg()
    rows = _bulletin_rows(period)
    charts = [report_export.bar_chart(
        str(_l("Ranking of %(group)s", group=figures.GROUPING_LABELS[by])),
        [(r["name"], r["score"]) for r in entries if r["score"] is not None][:20])
        for by, entries in rows.items()]
    html = render_template(
        "reports/document.html", title=str(_l("District bulletin, %(period)s",
                                              period=period.label)),
        doc_no=None, issued=now().astimezone(local_zone()).date().isoformat(),
        narrative=None, sections=[], intro=formula_text(), charts=charts,
        tables=_bulletin_tables(rows))
    return _download(report_export.pdf(html), "application/pdf", f"bulletin-{period.code}.pdf")
