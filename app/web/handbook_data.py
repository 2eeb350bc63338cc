"""The handbook data editor (a draft's `handbooks/scenarios/<key>.json` as a form with
field-level messages) and the review of its inferred values, one by one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.i18n import _l
from app.services import handbook_data_form as data_form
from app.services import handbooks
from app.services.errors import ValidationFailed
from app.services.overdue import scenario_names
from app.services.permissions import can, require
from app.web.util import me, now

bp = Blueprint("handbook_data", __name__, url_prefix="/designer")

# Names people read for the keys of the handbook data (the key itself is shown beside them).
FIELD_LABELS: dict[str, Any] = {
    "name": _l("Name of the entry"), "basis": _l("Basis"), "note": _l("Note"), "code": _l("Code"),
    "warning_items": _l("Warning items and thresholds"), "thresholds": _l("Thresholds"),
    "value": _l("Value"), "unit": _l("Unit"), "direction": _l("Direction"),
    "duration": _l("Duration rule"), "back_to_normal": _l("Back to normal below/above"),
    "time_limits": _l("Time limits"), "accept": _l("Accept within"),
    "on_site": _l("On site within"), "feedback": _l("Feedback within"),
    "close": _l("Close within"), "escalation_ladder": _l("Escalation ladder"),
    "missed_accept": _l("Not accepted in time"),
    "overdue_not_closed": _l("Overdue, not closed"), "after": _l("Delay after the missed deadline"),
    "repeat_every": _l("Repeat every"), "to": _l("To roles"), "measures": _l("Measures"),
    "text": _l("Text"), "cancellation": _l("Cancellation"), "causes": _l("Causes"),
    "criteria": _l("Criteria"), "evidence": _l("Evidence"),
    "feedback_fields": _l("Feedback fields"), "label": _l("Label"),
    "required": _l("Required"), "special_steps": _l("Special steps"),
    "weather_warnings": _l("Weather warnings that concern the scenario"),
    "escalation": _l("Escalation to medium and big loop"),
    "responsibility": _l("Responsibility"), "disposal_type": _l("Disposal type"),
    "default": _l("Inferred (to be confirmed at review)"), "levels": _l("Levels"),
    "red": _l("Red"), "orange": _l("Orange"), "yellow": _l("Yellow"), "blue": _l("Blue"),
}


def _render(version: Any, values: dict[str, Any], problems: dict[str, list[str]],
            error: Any = None, status: int = 200, *, doc: dict[str, Any] | None = None,
            unsaved: bool = False) -> tuple[str, int]:
    doc = doc if doc is not None else data_form.document(version)
    drawn = set(data_form.leaves(doc))
    drawn |= {p[:i] for p in drawn for i, c in enumerate(p) if c == "."}
    # A problem goes to its field, or to the nearest group the form draws (an item of a list
    # of codes is one field); what has no place on the form is listed above it.
    placed: dict[str, list[str]] = {}
    for path, messages in problems.items():
        where = path
        while where and where not in drawn:
            where = where.rsplit(".", 1)[0] if "." in where else ""
        placed.setdefault(where, []).extend(messages)
    problems = placed
    elsewhere = {p: m for p, m in problems.items() if p not in drawn}
    return render_template(
        "handbook_data/form.html", version=version, doc=doc, values=values,
        problems=problems, elsewhere=elsewhere, error=error, labels=FIELD_LABELS,
        unsaved=unsaved,
        may_save=version.status.value == "draft" and can(me(), "handbook.design", version.node),
        scenarios=scenario_names()), status


# One rule per page for reading and posting: a POST with an id beyond the id column is then a
# 404 like the GET (two rules on one path would answer it 405).
@bp.route("/versions/<int:version_id>/data", methods=["GET", "POST"])
@login_required
def form(version_id: int) -> Response | tuple[str, int]:
    if request.method == "POST":
        return _save(version_id)
    require(me(), "handbook.design")
    version = data_form.editable(me(), version_id)
    return _render(version, data_form.leaves(data_form.document(version)), {})


def _save(version_id: int) -> Response | tuple[str, int]:
    require(me(), "handbook.design")
    version = data_form.editable(me(), version_id)
    posted = {k: v for k, v in request.form.items() if not k.startswith("_")}
    flags, carried = set(request.form.getlist("_flag")), request.form.get("_doc")
    operation = request.form.get("_op", "save")
    if operation != "save":
        # Add or remove an entry: the form comes back with it, nothing is saved yet.
        result = data_form.read_form(data_form.working_document(version, carried), posted,
                                     flags)
        if result.problems:
            return _render(version, result.values, result.problems,
                           _("Please correct the marked fields."), 422, doc=result.doc)
        try:
            doc = data_form.change_entries(result.doc, operation)
        except ValidationFailed as exc:
            return _render(version, result.values, exc.details["fields"], exc.message, 422,
                           doc=result.doc)
        return _render(version, data_form.leaves(doc), {}, doc=doc, unsaved=True)
    try:
        version = data_form.save(me(), version_id, posted=posted, flags=flags,
                                 base_hash=request.form.get("_base", ""),
                                 note=request.form.get("_note", ""), now=now(),
                                 carried=carried)
    except ValidationFailed as exc:
        db.session.rollback()
        version = handbooks.get_version(version_id)
        details = exc.details
        return _render(version, details.get("values") or {}, details.get("fields") or {},
                       exc.message, 422, doc=details.get("doc"))
    db.session.commit()
    flash(_("Handbook data saved into draft v%(n)s.", n=version.number), "success")
    return redirect(url_for("handbook_data.form", version_id=version_id))


@bp.route("/versions/<int:version_id>/inferred", methods=["GET", "POST"])
@login_required
def inferred(version_id: int) -> Response | str:
    if request.method == "POST":
        return _confirm(version_id)
    require(me(), "handbook.view")
    version = handbooks.get_version(version_id)
    values = data_form.inferred_values(version)
    may_confirm = (version.status.value == "in_review" and version.author_id != me().id
                   and can(me(), "handbook.review", version.node))
    return render_template("handbook_data/inferred.html", version=version, values=values,
                           waiting=[v for v in values if not v.carried and not v.confirmed_at],
                           may_confirm=may_confirm, scenarios=scenario_names())


def _confirm(version_id: int) -> Response:
    require(me(), "handbook.review")
    found = data_form.confirm(me(), version_id, request.form.get("path", ""), now=now())
    db.session.commit()
    flash(_("Confirmed: %(path)s.", path=found.path), "success")
    return redirect(url_for("handbook_data.inferred", version_id=version_id)
                    + f"#v-{found.path.replace('.', '-')}")
