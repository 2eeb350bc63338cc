"""Sensing and technical operations pages: the monitoring-point registry with import and
export, feed health (Art 8), maintenance and the account lifecycle (Art 15), coverage
(Art 12) and filing (Art 19)."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import login_required
from marshmallow import Schema, fields, validate
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.i18n import _l
from app.services import coverage, feeds, filings, maintenance, points
from app.services.errors import DomainError, ValidationFailed
from app.services.permissions import can, require, scope_paths
from app.services.scenarios import scenario_names, visible_scenarios
from app.timezone import local_zone
from app.web.operations import REQUIRED, LocalDateTime, _form, _load, _local, _refuse, _towns
from app.web.util import int_arg, me, now

bp = Blueprint("registry", __name__, url_prefix="/operations")


@bp.get("/points")
@login_required
def points_page() -> str:
    found = points.search(me(), q=request.args.get("q", "")[:100],
                          scenario=request.args.get("scenario") or None,
                          town=request.args.get("town") or None,
                          retired=request.args.get("retired") == "1", page=int_arg("page"))
    return render_template("operations/points.html", result=found, args=request.args,
                           scenarios=scenario_names(), towns=_towns(),
                           choices=visible_scenarios(me(), points.VIEW_ACTION))


@bp.route("/points/<int:point_id>", methods=["GET", "POST"])
@login_required
def point(point_id: int) -> Response | str | tuple[str, int]:
    user = me()
    found = points.get(user, point_id)
    errors: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        require(user, points.MANAGE_ACTION)
        try:
            points.update(user, point_id, dict(request.form), now=now())
        except DomainError as exc:
            _refuse(exc)
            errors, error, status = exc.details, exc.message, exc.status
            found = points.get(user, point_id)
        else:
            db.session.commit()
            flash(_("Point %(code)s saved.", code=found.code), "success")
            return redirect(url_for("registry.point", point_id=point_id))
    values = dict(request.form) if error else {
        **{c: getattr(found, c, None) for c in points.EDITABLE if c != "town"},
        "town": found.node.code}
    return render_template("operations/point.html", point=found, values=values, errors=errors,
                           error=error, towns=_towns(), datums=points.DATUMS,
                           scenarios=scenario_names(),
                           may_edit=can(user, points.MANAGE_ACTION)), status


@bp.post("/points/<int:point_id>/retire")
@login_required
def retire_point(point_id: int) -> Response:
    found = points.retire(me(), point_id, now=now())
    db.session.commit()
    flash(_("Point %(code)s retired; its history is kept.", code=found.code), "success")
    return redirect(url_for("registry.point", point_id=point_id))


@bp.route("/points/import", methods=["GET", "POST"])
@login_required
def import_points() -> str | tuple[str, int]:
    user = me()
    require(user, points.MANAGE_ACTION)
    result = None
    error = None
    status = 200
    if request.method == "POST":
        upload = request.files.get("file")
        try:
            if upload is None or not upload.filename:
                raise ValidationFailed(_("Choose a CSV or XLSX file."),
                                       details={"file": [_("Required.")]})
            rows = points.read_upload(upload.filename, upload.read())
            result = points.import_rows(user, rows, dry_run=request.form.get("apply") != "1",
                                        now=now())
        except DomainError as exc:
            _refuse(exc)
            error, status = exc.message, exc.status
        else:
            if result.ok and not result.dry_run:
                db.session.commit()
            else:
                db.session.rollback()
                if not result.ok:
                    status = 422
    return render_template("operations/points_import.html", result=result, error=error,
                           columns=points.COLUMNS), status


@bp.get("/points/export.<fmt>")
@login_required
def export_points(fmt: str) -> Response:
    require(me(), points.VIEW_ACTION)
    rows = points.export_rows(me())
    if fmt == "xlsx":
        body, kind = points.to_xlsx(rows), \
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    elif fmt == "csv":
        body, kind = points.to_csv(rows), "text/csv; charset=utf-8"
    else:
        raise DomainError(_("Export as csv or xlsx."), status=404, code="not_found")
    return send_file(BytesIO(body), mimetype=kind, as_attachment=True,
                     download_name=f"monitoring-points.{fmt}", max_age=0)


@bp.get("/feeds")
@login_required
def feeds_page() -> str:
    user = me()
    if not (can(user, "system.status") or can(user, points.VIEW_ACTION)):
        require(user, "system.status")
    end = now()
    days = min(max(int_arg("days", 7), 1), 90)
    start = end - timedelta(days=days)
    return render_template("operations/feeds.html", days=days,
                           figures=feeds.feed_figures(start, end),
                           by_scenario=feeds.online_rates(start, end, by="scenario"),
                           by_town=feeds.online_rates(start, end, by="town"),
                           silent=feeds.silent_feeds(end, None if can(user, "system.status")
                                                     else user),
                           scenarios=scenario_names(), now=end)


# ---------------------------------------------------------------- maintenance (Art 15)

class MaintenanceForm(Schema):
    point_code = fields.String(load_default="", validate=validate.Length(
        max=80, error=_l("At most 80 characters.")))
    system = fields.String(load_default="", validate=validate.Length(
        max=120, error=_l("At most 120 characters.")))
    kind = fields.String(required=True, error_messages=REQUIRED)
    performed_by = fields.String(required=True, error_messages=REQUIRED, validate=validate.Length(
        max=120, error=_l("At most 120 characters.")))
    starts_at = LocalDateTime(required=True, error_messages=REQUIRED)
    ends_at = LocalDateTime(load_default=None)
    work = fields.String(required=True, error_messages=REQUIRED, validate=validate.Length(
        max=4000, error=_l("At most 4000 characters.")))
    result = fields.String(load_default="", validate=validate.Length(
        max=4000, error=_l("At most 4000 characters.")))


@bp.route("/maintenance", methods=["GET", "POST"])
@login_required
def maintenance_page() -> Response | str | tuple[str, int]:
    user = me()
    require(user, points.VIEW_ACTION)
    errors: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        require(user, points.MANAGE_ACTION)
        try:
            data = _load(MaintenanceForm(), _form())
            maintenance.record(user, now=now(), **data)
        except DomainError as exc:
            _refuse(exc)
            errors, error, status = exc.details, exc.message, exc.status
        else:
            db.session.commit()
            flash(_("Maintenance recorded."), "success")
            return redirect(url_for("registry.maintenance_page"))
    current = now()
    values = _form() if error else {"starts_at": _local(current),
                                     "point_code": request.args.get("point", "")}
    return render_template("operations/maintenance.html", rows=maintenance.records(user),
                           kinds=maintenance.KINDS, errors=errors, error=error, values=values,
                           may_record=can(user, points.MANAGE_ACTION)), status


@bp.get("/account-lifecycle")
@login_required
def account_lifecycle() -> str:
    lines = maintenance.account_lifecycle(me(), now())
    return render_template("operations/account_lifecycle.html", lines=lines)


# ---------------------------------------------------------------- coverage (Art 12)

@bp.get("/coverage")
@login_required
def coverage_page() -> str:

    user = me()
    require(user, points.VIEW_ACTION)
    paths = scope_paths(user, points.VIEW_ACTION)
    scenario = request.args.get("scenario") or None
    today = now().astimezone(local_zone()).date()
    rows = [r for r in coverage.current(now(), paths) if scenario in (None, r.scenario)]
    return render_template("operations/coverage.html", rows=rows, scenario=scenario,
                           trend=coverage.trend(today - timedelta(days=30), today,
                                                scenario=scenario),
                           scenarios=scenario_names(),
                           choices=visible_scenarios(user, points.VIEW_ACTION))


# ---------------------------------------------------------------- filing (Art 19)

@bp.route("/filings", methods=["GET", "POST"])
@login_required
def filings_page() -> Response | str | tuple[str, int]:
    user = me()
    rows = filings.listing(user)
    errors: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        require(user, filings.SUBMIT)
        upload = request.files.get("file")
        try:
            raw = request.form.get("node", "").strip()
            node_id = int(raw) if raw.isdigit() and len(raw) < 10 else 0
            filings.submit(user, node_id=node_id,
                           title=request.form.get("title", ""),
                           filename=upload.filename or "" if upload else "",
                           content=upload.read() if upload else b"", now=now())
        except DomainError as exc:
            _refuse(exc)
            errors, error, status = exc.details, exc.message, exc.status
        else:
            db.session.commit()
            flash(_("Rules filed with the district safety committee office."), "success")
            return redirect(url_for("registry.filings_page"))
    return render_template("operations/filings.html", rows=rows, units=filings.units(user),
                           errors=errors, error=error, values=_form() if error else {},
                           may_acknowledge=can(user, filings.ACKNOWLEDGE)), status


@bp.post("/filings/<int:filing_id>/acknowledge")
@login_required
def acknowledge_filing(filing_id: int) -> Response:
    filings.acknowledge(me(), filing_id, note=request.form.get("note", ""), now=now())
    db.session.commit()
    flash(_("Filing acknowledged."), "success")
    return redirect(url_for("registry.filings_page"))


@bp.get("/filings/<int:filing_id>/file")
@login_required
def filing_file(filing_id: int) -> Response:
    found = filings.get(me(), filing_id)
    extension = {filings.PDF: "pdf", filings.DOCX: "docx", filings.DOC: "doc"}[found.content_type]
    response = send_file(BytesIO(found.content), mimetype=found.content_type, as_attachment=True,
                         download_name=f"filing-{found.id}.{extension}", max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response
