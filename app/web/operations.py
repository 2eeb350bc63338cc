"""Operations pages: overdue cases, data-quality corrections, silences, API keys, unknown points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.i18n import _l
from app.inputs import DbInteger, field_messages, load_schema
from app.models import Department, NodeKind, PlatformNode
from app.services import api_keys, intake, overdue, quality, staffing
from app.services.errors import DomainError, Forbidden, ValidationFailed
from app.services.permissions import can, require
from app.services.scenarios import scenario_names, visible_scenarios
from app.timezone import local_zone
from app.web.util import int_arg, me, now

bp = Blueprint("operations", __name__, url_prefix="/operations")

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
REQUIRED = {"required": _l("Required."), "null": _l("Required.")}


class LocalDateTime(fields.Field):
    """A `datetime-local` input: Shanghai wall time without zone, returned as aware UTC."""

    default_error_messages = {"invalid": _l("Enter a date and time (YYYY-MM-DD HH:MM).")}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace(" ", "T"))
        except ValueError:
            raise self.make_error("invalid") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=local_zone())
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # the first or last day of the calendar, shifted out of it
            raise self.make_error("invalid") from None


class SilenceForm(Schema):
    scenario = fields.String(required=True, error_messages=REQUIRED)
    point_code = fields.String(required=True, error_messages=REQUIRED,
                               validate=validate.Length(max=80, error=_l("At most 80 characters.")))
    indicator = fields.String(load_default=None,
                              validate=validate.Length(max=60, error=_l("At most 60 characters.")))
    starts_at = LocalDateTime(required=True, error_messages=REQUIRED)
    ends_at = LocalDateTime(required=True, error_messages=REQUIRED)
    reason = fields.String(required=True, error_messages=REQUIRED,
                           validate=validate.Length(max=1000,
                                                    error=_l("At most 1000 characters.")))


class ApiKeyForm(Schema):
    name = fields.String(required=True, error_messages=REQUIRED,
                         validate=validate.Length(max=120, error=_l("At most 120 characters.")))
    source_type = fields.String(required=True, error_messages=REQUIRED,
                                validate=validate.OneOf(api_keys.SOURCE_TYPES,
                                                        error=_l("Choose a source type.")))
    scenarios = fields.List(fields.String(), required=True,
                            error_messages={"required": _l("Choose at least one scenario.")})
    node_codes = fields.List(fields.String(), load_default=list)


class CorrectionForm(Schema):
    value = fields.String(load_default=None,
                          validate=validate.Length(max=500, error=_l("At most 500 characters.")))
    explanation = fields.String(required=True, error_messages=REQUIRED,
                                validate=validate.Length(max=2000,
                                                         error=_l("At most 2000 characters.")))


class PointForm(Schema):
    name = fields.String(required=True, error_messages=REQUIRED,
                         validate=validate.Length(max=200, error=_l("At most 200 characters.")))
    node = DbInteger(required=True, strict=False,
                          error_messages={**REQUIRED, "invalid": _l("Choose a street or town.")})
    lat = fields.Float(required=True, error_messages={**REQUIRED,
                                                      "invalid": _l("Enter a number.")})
    lon = fields.Float(required=True, error_messages={**REQUIRED,
                                                      "invalid": _l("Enter a number.")})
    object_type = fields.String(load_default="", validate=validate.Length(
        max=60, error=_l("At most 60 characters.")))


def _form(*lists: str) -> dict[str, Any]:
    """The submitted form without blanks (a blank required field reads as missing)."""
    data: dict[str, Any] = {k: v.strip() for k, v in request.form.items()
                            if k != "csrf_token" and k not in lists and v.strip()}
    for name in lists:
        values = [v for v in request.form.getlist(name) if v.strip()]
        if values:
            data[name] = values
    return data


def _load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    try:
        return load_schema(schema, data, unknown="exclude")
    except ValidationFailed as exc:
        exc.details = field_messages(exc.details)
        raise


def _local(moment: datetime) -> str:
    return moment.astimezone(local_zone()).strftime(LOCAL_FORMAT)


def _refuse(exc: DomainError) -> None:
    db.session.rollback()
    if isinstance(exc, Forbidden) or exc.status in (403, 404):
        raise exc


@bp.get("/")
@login_required
def index() -> str:
    user = me()
    allowed = {name: can(user, name) for name in ("overdue.view", "silence.manage",
                                                  "apikeys.manage", "case.correct",
                                                  "case.retry")}
    if not any(allowed.values()):
        require(user, "overdue.view")
    counts: dict[str, int] = {}
    if allowed["overdue.view"]:
        counts["overdue"] = overdue.overdue_cases(user, now()).total
        counts["quality"] = sum(quality.list_issues(user, per_page=1).counts.values())
    if allowed["overdue.view"] or allowed["silence.manage"]:
        counts["silences"] = len(overdue.silences(user, now()).active)
    if allowed["overdue.view"] or allowed["case.correct"]:
        counts["unknown"] = len(overdue.unknown_points(user))
    if allowed["case.retry"]:
        from app.services import stuck

        counts["stuck"] = stuck.count_stuck()
    allowed["publication.start"] = _may_publish(user)
    return render_template("operations/index.html", allowed=allowed, counts=counts)


def _may_publish(user: Any) -> bool:
    from app.services.publications import may_start

    return may_start(user)


@bp.post("/publications")
@login_required
def start_publication() -> Response:
    """区气象局 drafts a weather warning: open a publication and go to its first step."""
    from app.models import CaseTask
    from app.services import publications

    case = publications.start(me(), now=now())
    db.session.commit()
    task_id = db.session.scalar(select(CaseTask.id).where(
        CaseTask.case_id == case.id, CaseTask.status == "ready"))
    if task_id is None:
        return redirect(url_for("cases.case_page", case_no=case.case_no))
    return redirect(url_for("cases.task", task_id=task_id))


@bp.get("/overdue")
@login_required
def overdue_page() -> str:
    department = request.args.get("department") or None
    report = overdue.overdue_cases(me(), now(), department=department)
    summary = overdue.overdue_cases(me(), now()) if department else report
    return render_template("operations/overdue.html", report=report, summary=summary,
                           department=department, scenarios=scenario_names())


@bp.get("/overdue.json")
@login_required
def overdue_json() -> Response:
    report = overdue.overdue_cases(me(), now(), department=request.args.get("department") or None)
    return jsonify(report.to_dict())


@bp.get("/quality")
@login_required
def quality_page() -> str:
    rule = request.args.get("rule") or None
    state = request.args.get("state", "open")
    if state not in ("resolved", "all"):
        state = "open"
    page = quality.list_issues(me(), rule=rule, state=state, page=int_arg("page"))
    return render_template("operations/quality.html", result=page, rule=rule, state=state,
                           rules=quality.RULES, rules_by_code=quality.RULES_BY_CODE,
                           categories=quality.CATEGORY_LABELS,
                           scenarios=scenario_names(), gaps=staffing.open_gaps(me()),
                           departments=staffing.department_names())


@bp.route("/quality/<int:issue_id>", methods=["GET", "POST"])
@login_required
def issue(issue_id: int) -> Response | str | tuple[str, int]:
    found, case = quality.get_issue(me(), issue_id)
    errors: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        require(me(), quality.CORRECT_ACTION, case)
        try:
            data = _load(CorrectionForm(), _form())
            quality.correct(me(), issue_id, explanation=data["explanation"], value=data["value"],
                            now=now())
        except DomainError as exc:
            _refuse(exc)
            errors, error, status = exc.details, exc.message, exc.status
            found, case = quality.get_issue(me(), issue_id)
        else:
            db.session.commit()
            flash(_("Correction recorded in the case history and the audit trail."), "success")
            return redirect(url_for("operations.issue", issue_id=issue_id))
    return render_template("operations/issue.html", issue=found, case=case,
                           rule=quality.RULES_BY_CODE.get(found.rule),
                           categories=quality.CATEGORY_LABELS, errors=errors, error=error,
                           values=_form() if error else {},
                           scenarios=scenario_names()), status


@bp.route("/silences", methods=["GET", "POST"])
@login_required
def silences() -> Response | str | tuple[str, int]:
    user = me()
    if not (can(user, "silence.manage") or can(user, "overdue.view")):
        require(user, "silence.manage")
    choices = visible_scenarios(user, "silence.manage")
    errors: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        require(user, "silence.manage")
        try:
            data = _load(SilenceForm(), _form())
            if data["scenario"] not in choices:
                raise DomainError(_("Please correct the marked fields."), status=422,
                                  code="validation_failed",
                                  details={"scenario": [_("Choose one of your scenarios.")]})
            indicator = data["indicator"] and intake.item_for(
                intake.handbook_for(data["scenario"]), data["indicator"]).indicator
            intake.silence(user, scenario=data["scenario"], point_code=data["point_code"],
                           indicator=indicator, starts_at=data["starts_at"],
                           ends_at=data["ends_at"], reason=data["reason"], now=now())
        except DomainError as exc:
            _refuse(exc)
            errors, error, status = exc.details, exc.message, exc.status
        else:
            db.session.commit()
            flash(_("Silence set. Matching alerts are kept and listed but open no case."),
                  "success")
            return redirect(url_for("operations.silences"))
    current = now()
    values = _form() if error else {"starts_at": _local(current),
                                     "ends_at": _local(current + timedelta(hours=4))}
    return render_template("operations/silences.html", listing=overdue.silences(user, current),
                           choices=choices, scenarios=scenario_names(), errors=errors,
                           error=error, values=values), status


@bp.post("/silences/<int:silence_id>/end")
@login_required
def end_silence(silence_id: int) -> Response:
    intake.end_silence(me(), silence_id, now=now())
    db.session.commit()
    flash(_("Silence ended. New alerts from this point open cases again."), "success")
    return redirect(url_for("operations.silences"))


@bp.route("/api-keys", methods=["GET", "POST"])
@login_required
def keys() -> Response | str | tuple[str, int]:
    user = me()
    require(user, "apikeys.manage")
    choices = visible_scenarios(user, "apikeys.manage")
    errors: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        try:
            data = _load(ApiKeyForm(), _form("scenarios", "node_codes"))
            issued = api_keys.issue(user, name=data["name"], source_type=data["source_type"],
                                    scenarios=data["scenarios"], now=now(),
                                    known_scenarios=set(choices),
                                    node_codes=data["node_codes"])
        except DomainError as exc:
            _refuse(exc)
            errors, error, status = exc.details, exc.message, exc.status
        else:
            db.session.commit()
            return render_template("operations/api_key_issued.html", key=issued.key,
                                   secret=issued.secret, scenarios=scenario_names())
    values = _form("scenarios", "node_codes") if error else {}
    return render_template("operations/api_keys.html", keys=api_keys.list_keys(user),
                           towns=_towns(),
                           choices=choices, source_types=api_keys.SOURCE_TYPES,
                           scenarios=scenario_names(), errors=errors, error=error,
                           values=values), status


@bp.post("/api-keys/<int:key_id>/revoke")
@login_required
def revoke_key(key_id: int) -> Response:
    key = api_keys.revoke(me(), key_id, now=now())
    db.session.commit()
    flash(_("API key %(name)s revoked. The source system can no longer report with it.",
            name=key.name), "success")
    return redirect(url_for("operations.keys"))


@bp.get("/unknown-points")
@login_required
def unknown_points() -> str:
    user = me()
    if not (can(user, "case.correct") or can(user, "overdue.view")):
        require(user, "case.correct")
    return render_template("operations/unknown_points.html",
                           points=overdue.unknown_points(user),
                           scenarios=scenario_names())


def _towns() -> list[PlatformNode]:
    return list(db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind.in_((NodeKind.TOWN, NodeKind.LINGANG))).order_by(PlatformNode.id)))


@bp.route("/unknown-points/register", methods=["GET", "POST"])
@login_required
def register_point() -> Response | str | tuple[str, int]:
    user = me()
    scenario = request.values.get("scenario", "")
    code = request.values.get("code", "")
    target = db.session.scalar(select(PlatformNode).where(
        PlatformNode.code == f"scenario.{scenario}"))
    if target is None or not code:
        raise DomainError(_("Open this form from the list of unknown points."), status=404,
                          code="not_found")
    require(user, quality.CORRECT_ACTION, target)
    errors: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        try:
            data = _load(PointForm(), _form())
            point = quality.register_point(user, scenario=scenario, code=code, name=data["name"],
                                           node_id=data["node"], lat=data["lat"],
                                           lon=data["lon"], object_type=data["object_type"],
                                           now=now())
        except DomainError as exc:
            _refuse(exc)
            errors, error, status = exc.details, exc.message, exc.status
        else:
            db.session.commit()
            flash(_("Point %(code)s registered in %(town)s.", code=point.code,
                    town=point.node.name), "success")
            return redirect(url_for("operations.unknown_points"))
    department = db.session.get(Department, target.department_id or 0)
    return render_template("operations/register_point.html", scenario=scenario, code=code,
                           scenario_name=target.name, department=department, towns=_towns(),
                           errors=errors, error=error,
                           values=_form() if error else {}), status


@bp.get("/stuck")
@login_required
def stuck_page() -> str:
    from app.services import stuck

    return render_template("operations/stuck.html", rows=stuck.stuck_cases(me()),
                           scenarios=scenario_names())


@bp.post("/stuck/<int:case_id>/retry")
@login_required
def retry_stuck(case_id: int) -> Response:
    from app.services import stuck

    try:
        fixed = stuck.retry(me(), case_id, now=now())
    except DomainError as exc:
        _refuse(exc)
        flash(exc.message, "error")
        return redirect(url_for("operations.stuck_page"))
    db.session.commit()
    if fixed:
        flash(_("The case runs again."), "success")
    else:
        flash(_("The step failed again; the reason is shown below."), "error")
    return redirect(url_for("operations.stuck_page"))
