"""Handbook versions: list, history with diff summaries, the review page and its actions,
BPMN download."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers.response import Response as WerkzeugResponse

from app.extensions import db
from app.services import handbook_drafts, handbooks, problem_text, test_runs
from app.services.permissions import require
from app.web.util import me, now

bp = Blueprint("handbooks", __name__, url_prefix="/handbooks")


@bp.get("/")
@login_required
def index() -> str:
    require(me(), "handbook.view")
    return render_template("handbooks/index.html", rows=handbooks.overview())


@bp.get("/<key>")
@login_required
def versions(key: str) -> str:
    require(me(), "handbook.view")
    found = handbooks.versions_of(key)
    if not found:
        abort(404)
    return render_template("handbooks/versions.html", key=key, versions=found,
                           node=found[0].node)


@bp.get("/versions/<int:version_id>/files/<path:name>")
@login_required
def file(version_id: int, name: str) -> Response:
    require(me(), "handbook.view")
    version = handbooks.get_version(version_id)
    if name not in version.files:
        abort(404)
    mimetype = "application/xml" if name.endswith(".bpmn") else "application/json"
    return Response(version.files[name], mimetype=f"{mimetype}; charset=utf-8")


@bp.get("/versions/<int:version_id>/review")
@login_required
def review_page(version_id: int) -> str:
    """What a reviewer decides on: the visual and data diff against the version the draft
    started from, the validation report, the test runs, and approve / reject."""
    require(me(), "handbook.view")
    version = handbooks.get_version(version_id)
    report = handbook_drafts.review_report(version)
    return render_template("handbooks/review.html", version=version, report=report,
                           runs=test_runs.runs_of(version.id), v=version,
                           problem_text=problem_text.text)


@bp.post("/versions/<int:version_id>/<action>")
@login_required
def review(version_id: int, action: str) -> WerkzeugResponse:
    text = request.form.get("comment", "")
    if action == "submit":
        version = handbooks.submit_for_review(me(), version_id, note=text, now=now())
        message = _("Sent for review.")
    elif action == "approve":
        version = handbooks.approve(me(), version_id, comment=text, now=now())
        message = _("Published. New cases start on this version.")
    elif action == "reject":
        version = handbooks.reject(me(), version_id, reason=text, now=now())
        message = _("Rejected and returned to draft.")
    else:
        abort(404)
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("handbooks.versions", key=version.handbook_key))
