"""Responders' pages: the inbox, task forms, case pages with history and diagram, notifications."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.inputs import db_id
from app.models import (
    LEVEL_RANK,
    Attachment,
    Case,
    CaseTask,
    HandbookVersion,
    User,
)
from app.services import case_view, cases, inbox, notify, org, publications, steps
from app.services.engine import compiled
from app.services.errors import Conflict, ValidationFailed
from app.services.permissions import can, require
from app.services.scenarios import scenario_names
from app.services.verification import verify_case
from app.timezone import local_zone
from app.web import case_history as history
from app.web.case_history import attachments, local_input, widget
from app.web.util import int_arg, me, now, safe_next
from workflows import FormField

bp = Blueprint("cases", __name__)

STATUSES = ("ready", "mine", "claimable")
# The file input of a task form whose BPMN form has no evidence field of its own.
EXTRA_EVIDENCE = "evidence__extra"
# A task form may carry a few evidence files; other posts are small.
UPLOAD_LIMIT = 3 * cases.MAX_ATTACHMENT_BYTES + 1024 * 1024
FORM_LIMIT = 256 * 1024


@bp.url_value_preprocessor
def _limit_body(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Runs before the CSRF check parses the form, so the limit applies to that parsing too.
    if request.method == "POST":
        uploads = endpoint in ("cases.task", "cases.add_attachment")
        request.max_content_length = UPLOAD_LIMIT if uploads else FORM_LIMIT


@bp.app_context_processor
def _header() -> dict[str, Any]:
    def unread() -> int:
        if not current_user.is_authenticated:
            return 0
        try:
            return notify.unread_count(me())
        except SQLAlchemyError:  # the header must not turn an error page into another error
            return 0

    return {"unread_notifications": unread}


def _span(minutes: int) -> str:
    if minutes >= 1440:
        return _("%(d)d d %(h)d h", d=minutes // 1440, h=(minutes % 1440) // 60)
    if minutes >= 60:
        return _("%(h)d h %(m)d min", h=minutes // 60, m=minutes % 60)
    return _("%(m)d min", m=minutes)


@bp.app_template_global()
def due_countdown(due: datetime | None) -> dict[str, Any] | None:
    """Time left before `due`, or how late it is, from the application's clock."""
    if due is None:
        return None
    seconds = (due - now()).total_seconds()
    minutes = int(abs(seconds) // 60)
    late = seconds < 0
    text = _("Overdue by %(time)s", time=_span(minutes)) if late else \
        _("%(time)s left", time=_span(minutes))
    return {"late": late, "minutes": minutes, "text": text}


@bp.app_template_global()
def place_choices() -> list[tuple[str, str]]:
    """Streets, towns and Lingang as (code, name): the choices of a `towns` form field."""
    return [(n.code, n.name) for n in org.places()]


# ---------------------------------------------------------------- inbox


@bp.get("/inbox")
@login_required
def inbox_page() -> str:
    args = request.args
    town = args.get("town", "")
    flt = inbox.InboxFilter(
        scenario=args.get("scenario") or None,
        level=args.get("level") if args.get("level") in LEVEL_RANK else None,
        town_node_id=db_id(town),
        status=str(args.get("status")) if args.get("status") in STATUSES else "ready",
        overdue_only=args.get("overdue") == "1", case_no=args.get("q", "").strip() or None)
    found = inbox.inbox(me(), flt, now=now(), page=int_arg("page"), per_page=20)
    params: dict[str, Any] = {k: v for k, v in {
        "scenario": flt.scenario, "level": flt.level, "town": flt.town_node_id,
        "status": flt.status if flt.status != "ready" else None,
        "overdue": "1" if flt.overdue_only else None, "q": flt.case_no}.items() if v}

    def link(**changes: str | None) -> str:
        merged: dict[str, Any] = {**params, **changes}
        return url_for("cases.inbox_page", **{k: v for k, v in merged.items() if v})

    return render_template("cases/inbox.html", found=found, flt=flt, params=params, link=link,
                           facets=found.counts, scenarios=scenario_names())


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id: int) -> Response:
    row = cases.claim(me(), task_id, now=now())
    db.session.commit()
    flash(_("You claimed %(step)s of %(case)s.", step=row.name, case=row.case.case_no),
          "success")
    return redirect(safe_next(url_for("cases.task", task_id=task_id)))


@bp.post("/tasks/<int:task_id>/release")
@login_required
def release(task_id: int) -> Response:
    row = cases.release(me(), task_id, now=now())
    db.session.commit()
    flash(_("Released: others in your role can now take %(step)s.", step=row.name), "success")
    return redirect(safe_next(url_for("cases.inbox_page")))


# ---------------------------------------------------------------- task form


def _version(case: Case) -> HandbookVersion:
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    assert version is not None
    return version


def _can_act(user: User, row: CaseTask) -> bool:
    return cases.can_act(user, row)


def _measures(case: Case, role: str | None = None) -> list[dict[str, Any]]:
    return case_view.measures(case, role)


def _task_and_case(task_id: int) -> tuple[CaseTask, Case]:
    row = db.session.get(CaseTask, task_id)
    if row is None:
        abort(404)
    return row, cases.get_case(me(), row.case_id)


def initial_values(case: Case, fields: tuple[FormField, ...]) -> dict[str, Any]:
    """A new form: what the case already knows, else the BPMN default, else now for a time."""
    known = case_view.prefill(case, fields)
    values: dict[str, Any] = {"measure": known.pop("measure", [])}
    for f in fields:
        if f.id in known:
            value = known[f.id]
            if widget(f) in ("file", "towns") and isinstance(value, str):
                value = [v for v in value.split(",") if v]
            values[f.id] = (local_input(value) if widget(f) == "datetime" else
                            value if isinstance(value, list)
                            else ("true" if value else "false") if f.type == "boolean"
                            else str(value))
        elif f.default is not None:
            values[f.id] = ("true" if f.default else "false") if f.type == "boolean" \
                else str(f.default)
        elif widget(f) == "datetime":
            values[f.id] = local_input(now().isoformat())
    return values


def _store(case: Case, upload: FileStorage) -> Attachment:
    return cases.add_attachment(me(), case, filename=upload.filename or "",
                                content=upload.read(cases.MAX_ATTACHMENT_BYTES + 1), now=now())


@dataclass
class _Submission:
    form: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    stored: int = 0


def read_task_form(case: Case, fields: tuple[FormField, ...]) -> _Submission:
    """The posted values as the engine expects them; evidence files are stored first."""
    sub = _Submission(values={k: v for k, v in request.form.items() if k != "csrf_token"})
    known = {a.id for a in attachments(case)}
    for f in fields:
        raw = request.form.get(f.id)
        if widget(f) == "file":
            chosen = [v for v in request.form.getlist(f.id) if v]
            if any(not v.isdigit() or int(v) not in known for v in chosen):
                sub.errors[f.id] = [_("Choose evidence attached to this case.")]
                chosen = [v for v in chosen if v.isdigit() and int(v) in known]
            for upload in request.files.getlist(f"{f.id}__upload"):
                if not upload.filename:
                    continue
                try:
                    chosen.append(str(_store(case, upload).id))
                    sub.stored += 1
                except ValidationFailed as exc:
                    sub.errors[f.id] = [str(exc.message)]
            sub.values[f.id] = chosen
            sub.form[f.id] = ",".join(chosen)
        elif widget(f) == "towns":
            chosen = [v for v in request.form.getlist(f.id) if v]
            sub.values[f.id] = chosen
            sub.form[f.id] = ",".join(chosen)
        elif raw is not None and widget(f) == "datetime" and raw.strip():
            try:
                moment = datetime.fromisoformat(raw.strip())
                moment = moment if moment.tzinfo else moment.replace(tzinfo=local_zone())
                sub.form[f.id] = moment.isoformat()
            except ValueError:
                sub.form[f.id] = raw
        elif raw is not None:
            sub.form[f.id] = raw
    sub.values["measure"] = request.form.getlist("measure")
    if not any(widget(f) == "file" for f in fields):
        # A form without an evidence field still takes photos of what was done.
        for upload in request.files.getlist(EXTRA_EVIDENCE):
            if not upload.filename:
                continue
            try:
                _store(case, upload)
                sub.stored += 1
            except ValidationFailed as exc:
                sub.errors[EXTRA_EVIDENCE] = [str(exc.message)]
    return sub


def form_errors(details: dict[str, Any]) -> dict[str, list[str]]:
    """The service's per-field messages (already in the reader's language) as lists."""
    return {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in details.items()}


def _next_step(user: User, case: Case) -> str:
    rows = db.session.scalars(select(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status == "ready").order_by(CaseTask.id))
    row = next((r for r in rows if _can_act(user, r)), None)
    return url_for("cases.task", task_id=row.id) if row else \
        url_for("cases.case_page", case_no=case.case_no)


def _render_task(row: CaseTask, case: Case, values: dict[str, Any],
                 errors: dict[str, list[str]] | None = None, error: Any = None,
                 status: int = 200) -> tuple[str, int]:
    user = me()
    spec = compiled(_version(case))
    element = next((e for e in spec.elements(row.process_id) if e.element_id == row.element_id),
                   None)
    in_main = row.process_id == case.process_id
    done = [e for e in history.timeline(case, history.events_of(case), spec, everything=False)
            if e.event.kind == "task" and e.event.new_state == "COMPLETED"
            and e.element_type == "UserTask"]
    return render_template(
        "cases/task.html", task=row, case=case, fields=spec.form_fields(row.process_id,
                                                                        row.element_id),
        documentation=element.documentation if element else None, values=values,
        errors=errors or {}, error=error, error_status=status, can_act=_can_act(user, row),
        measures=_measures(case, row.role) if in_main else [],
        handbook=cases.handbook_or_none(_version(case)), attachments=attachments(case),
        scenarios=scenario_names(), completed_by=db.session.get(User, row.completed_by_id or 0),
        publication=publications.summary(case), done=done, extra_evidence=EXTRA_EVIDENCE,
        has_file_field=any(widget(f) == "file" for f in spec.form_fields(row.process_id,
                                                                          row.element_id)),
        series=None if publications.summary(case) else case_view.readings(case),
        place=None if publications.summary(case) else case_view.place(case),
        step=steps.version_index(_version(case)).step_of(row.process_id, row.element_id),
    ), status


@bp.route("/tasks/<int:task_id>", methods=["GET", "POST"])
@login_required
def task(task_id: int) -> Response | tuple[str, int]:
    row, case = _task_and_case(task_id)
    fields = compiled(_version(case)).form_fields(row.process_id, row.element_id)
    if request.method == "GET":
        return _render_task(row, case, initial_values(case, fields))
    sub = _Submission(values={k: v for k, v in request.form.items() if k != "csrf_token"})
    try:
        if not _can_act(me(), row):
            cases.complete(me(), task_id, {}, now=now())  # raises the service's own refusal
        sub = read_task_form(case, fields)
        if sub.stored:
            db.session.commit()  # evidence stays on the case when the form needs correcting
        if sub.errors:
            raise ValidationFailed(_("Please correct the marked fields."), details=sub.errors)
        cases.complete(me(), task_id, sub.form, now=now())
        chosen = [m for m in _measures(case, row.role) if m["id"] in sub.values["measure"]]
        if chosen:
            cases.add_comment(me(), case, _("Standard measures carried out: %(list)s",
                                            list="; ".join(m["text"] for m in chosen)),
                              now=now(), measures=[m["id"] for m in chosen])
    except (ValidationFailed, Conflict) as exc:
        db.session.rollback()
        row, case = _task_and_case(task_id)
        errors = form_errors(exc.details) if isinstance(exc, ValidationFailed) else {}
        return _render_task(row, case, sub.values, errors, exc.message, exc.status)
    db.session.commit()
    flash(_("Done: %(step)s.", step=row.name), "success")
    return redirect(_next_step(me(), case))


# ---------------------------------------------------------------- case page


@bp.get("/cases/<case_no>")
@login_required
def case_page(case_no: str) -> str:
    user = me()
    view = case_view.case_view(user, case_no)
    case, version, events = view.case, view.version, view.events
    everything = request.args.get("events") == "all"
    return render_template(
        "cases/case.html", case=case, version=version, tasks=view.tasks, alerts=view.alerts,
        can_act=view.can_act, point=view.point,
        timeline=history.timeline(case, events, compiled(version), everything=everything),
        everything=everything, event_count=len(events),
        diagram=history.diagram(case, version, events,
                                request.args.get("diagram") or case.process_id),
        has_diagram=history.diagram_macro_exists(), measures=_measures(case),
        attachments=view.attachments, comments=view.comments,
        scenarios=scenario_names(), may_act=can(user, "case.act", case),
        may_replay=can(user, "audit.view"), publication=publications.summary(case))


@bp.get("/cases/<case_no>/replay")
@login_required
def replay(case_no: str) -> str:
    """Auditors: re-run the recorded inputs, check the event chain, step through history."""
    case = cases.get_case_by_no(me(), case_no)
    require(me(), "audit.view")
    version = _version(case)
    events = history.events_of(case)
    verdict = verify_case(case, events)
    outcome = {"ok": verdict.replay_ok, "finished": verdict.finished,
               "message": verdict.problem}
    steps = history.timeline(case, events, compiled(version), everything=False)
    index = min(max(int_arg("step"), 1), max(len(steps), 1))
    step = steps[index - 1] if steps else None
    upto = [e for e in events if step is None or e.seq <= step.event.seq]
    return render_template(
        "cases/replay.html", case=case, outcome=outcome, chain=verdict.chain_broken_at,
        steps=steps, step=step, index=index, has_diagram=history.diagram_macro_exists(),
        diagram=history.diagram(case, version, upto,
                                (step.process if step else "") or case.process_id, step=step))


@bp.post("/cases/<case_no>/comments")
@login_required
def add_comment(case_no: str) -> Response | tuple[str, int]:
    case = cases.get_case_by_no(me(), case_no)
    try:
        cases.add_comment(me(), case, request.form.get("body", ""), now=now())
    except ValidationFailed as exc:
        db.session.rollback()
        flash(_("Comment not saved: %(reason)s", reason=exc.message), "error")
    else:
        db.session.commit()
        flash(_("Comment added."), "success")
    return redirect(url_for("cases.case_page", case_no=case_no) + "#comments")


@bp.post("/cases/<case_no>/attachments")
@login_required
def add_attachment(case_no: str) -> Response:
    case = cases.get_case_by_no(me(), case_no)
    require(me(), "case.act", case)  # a refusal, not a flash about the missing file
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise ValidationFailed(_("Choose a file first."))
        stored = _store(case, upload)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(_("File not attached: %(reason)s", reason=exc.message), "error")
    else:
        db.session.commit()
        flash(_("Attached %(name)s.", name=stored.filename), "success")
    return redirect(url_for("cases.case_page", case_no=case_no) + "#attachments")


@bp.get("/cases/<case_no>/attachments/<int:attachment_id>")
@login_required
def attachment(case_no: str, attachment_id: int) -> Response:
    case = cases.get_case_by_no(me(), case_no)
    found = db.session.scalar(select(Attachment).where(
        Attachment.id == attachment_id, Attachment.case_id == case.id))
    if found is None:
        abort(404)
    # The detected type and the server's own name; the client's name never reaches the header.
    kind = found.content_type if found.content_type in cases.ATTACHMENT_TYPES \
        else "application/octet-stream"
    response = send_file(BytesIO(found.content), mimetype=kind,
                         as_attachment=not kind.startswith("image/"),
                         download_name=found.stored_name, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---------------------------------------------------------------- notifications


@bp.get("/notifications")
@login_required
def notifications() -> str:
    found = notify.for_user(me(), limit=100)
    ids = {n.case_id for n in found if n.case_id}
    numbers = dict(db.session.execute(select(Case.id, Case.case_no).where(
        Case.id.in_(ids))).tuples().all()) if ids else {}
    return render_template("cases/notifications.html", notices=found, numbers=numbers)


@bp.post("/notifications/read")
@login_required
def mark_read() -> Response:
    raw = request.form.getlist("id")
    # Ids no row can have are dropped rather than sent to the database.
    ids = [i for i in map(db_id, raw) if i is not None] if raw else None
    count = notify.mark_read(me(), ids, now=now())
    db.session.commit()
    flash(_("Marked %(n)d as read.", n=count), "success")
    return redirect(safe_next(url_for("cases.notifications")))
