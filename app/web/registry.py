"""Sensing operations pages: the monitoring-point registry with import and export, and the
feed-health page (Art 8)."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.services import feeds, points
from app.services.errors import DomainError, ValidationFailed
from app.services.overdue import scenario_names, visible_scenarios
from app.services.permissions import can, require
from app.web.operations import _refuse, _towns
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
