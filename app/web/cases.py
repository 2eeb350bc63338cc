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
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.inputs import db_id
from app.models import (
    LEVEL_RANK,
    Alert,
    Attachment,
    Case,
    CaseComment,
    CaseTask,
    HandbookVersion,
    MonitoringPoint,
    PlatformNode,
    User,
)
from app.services import cases, inbox, notify, org, publications
from app.services.engine import compiled
from app.services.errors import Conflict, ValidationFailed
from app.services.overdue import scenario_names
from app.services.permissions import can, require
from app.services.verification import verify_case
from app.web import case_history as history
from app.web.case_history import LOCAL_TZ, attachments, local_input, widget
from app.web.util import int_arg, local_target, me, now
from workflows import FormField

bp = Blueprint("cases", __name__)

STATUSES = ("ready", "mine", "claimable")
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


def _safe_next(default: str) -> str:
    return local_target(request.form.get("next"), default)


# ---------------------------------------------------------------- inbox


def _facets(user: User) -> dict[str, Any]:
    """Counts per scenario and per town of the same tasks the inbox lists.

    `inbox.counts` has levels, overdue and mine; the filter bar also needs these two."""
    base = (select(Case.scenario, Case.node_id).select_from(CaseTask)
            .join(Case, CaseTask.case_id == Case.id)
            .where(CaseTask.status == "ready", Case.is_test.is_(False),
                   inbox._eligible(user)).subquery())
    by_scenario = dict(db.session.execute(
        select(base.c.scenario, func.count()).group_by(base.c.scenario)).tuples().all())
    by_node = dict(db.session.execute(
        select(base.c.node_id, func.count()).group_by(base.c.node_id)).tuples().all())
    towns = db.session.execute(select(PlatformNode.id, PlatformNode.name).where(
        PlatformNode.id.in_(list(by_node))).order_by(PlatformNode.path)).tuples().all()
    return {"scenarios": by_scenario, "towns": [(i, n, by_node[i]) for i, n in towns]}


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
                           facets=_facets(me()), scenarios=scenario_names())


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id: int) -> Response:
    row = cases.claim(me(), task_id, now=now())
    db.session.commit()
    flash(_("You claimed %(step)s of %(case)s.", step=row.name, case=row.case.case_no),
          "success")
    return redirect(_safe_next(url_for("cases.task", task_id=task_id)))


@bp.post("/tasks/<int:task_id>/release")
@login_required
def release(task_id: int) -> Response:
    row = cases.release(me(), task_id, now=now())
    db.session.commit()
    flash(_("Released: others in your role can now take %(step)s.", step=row.name), "success")
    return redirect(_safe_next(url_for("cases.inbox_page")))


# ---------------------------------------------------------------- task form


def _version(case: Case) -> HandbookVersion:
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    assert version is not None
    return version


def _can_act(user: User, row: CaseTask) -> bool:
    return cases.takes_part(user, row)


def _measures(case: Case, role: str | None = None) -> list[dict[str, Any]]:
    """The handbook's standard measures that apply to the case's level and item."""
    handbook = cases.handbook_or_none(_version(case))
    if handbook is None:
        return []
    return [m for m in handbook.data["measures"]
            if (not m.get("levels") or case.level in m["levels"])
            and (not m.get("items") or case.item_code in m["items"])
            and (role is None or m.get("role", "responder") == role)]


def _task_and_case(task_id: int) -> tuple[CaseTask, Case]:
    row = db.session.get(CaseTask, task_id)
    if row is None:
        abort(404)
    return row, cases.get_case(me(), row.case_id)


def initial_values(fields: tuple[FormField, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in fields:
        if f.default is not None:
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
                moment = moment if moment.tzinfo else moment.replace(tzinfo=LOCAL_TZ)
                sub.form[f.id] = moment.isoformat()
            except ValueError:
                sub.form[f.id] = raw
        elif raw is not None:
            sub.form[f.id] = raw
    sub.values["measure"] = request.form.getlist("measure")
    return sub


_ENGINE_MESSAGES: tuple[tuple[str, Any], ...] = (
    ("is required", lambda n: _("Required.")),
    ("must be a whole number", lambda n: _("Enter a whole number.")),
    ("must be true or false", lambda n: _("Choose yes or no.")),
    ("must be a date and time", lambda n: _("Enter a date and time (YYYY-MM-DD HH:MM).")),
    ("needs a time zone", lambda n: _("Enter a date and time (YYYY-MM-DD HH:MM).")),
    ("must be a date", lambda n: _("Enter a date (YYYY-MM-DD).")),
    ("must be one of", lambda n: _("Choose one of the options.")),
    ("must have at least", lambda n: _("At least %(n)s characters.", n=n)),
    ("must have at most", lambda n: _("At most %(n)s characters.", n=n)),
    ("must be at least", lambda n: _("At least %(n)s.", n=n)),
    ("must be at most", lambda n: _("At most %(n)s.", n=n)),
)


def translated_errors(messages: dict[str, Any]) -> dict[str, list[str]]:
    """The engine validates forms in English; say the same in the reader's language."""
    out: dict[str, list[str]] = {}
    for key, found in messages.items():
        texts = []
        for text in (found if isinstance(found, list) else [found]):
            number = next((w for w in str(text).split() if w.replace(".", "").isdigit()), "")
            rule = next((say for start, say in _ENGINE_MESSAGES if str(text).startswith(start)),
                        None)
            texts.append(rule(number) if rule else str(text))
        out[key] = texts
    return out


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
    return render_template(
        "cases/task.html", task=row, case=case, fields=spec.form_fields(row.process_id,
                                                                        row.element_id),
        documentation=element.documentation if element else None, values=values,
        errors=errors or {}, error=error, error_status=status, can_act=_can_act(user, row),
        measures=_measures(case, row.role) if in_main else [],
        handbook=cases.handbook_or_none(_version(case)), attachments=attachments(case),
        scenarios=scenario_names(), completed_by=db.session.get(User, row.completed_by_id or 0),
        publication=publications.summary(case),
    ), status


@bp.route("/tasks/<int:task_id>", methods=["GET", "POST"])
@login_required
def task(task_id: int) -> Response | tuple[str, int]:
    row, case = _task_and_case(task_id)
    fields = compiled(_version(case)).form_fields(row.process_id, row.element_id)
    if request.method == "GET":
        return _render_task(row, case, initial_values(fields))
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
        chosen = [m["text"] for m in _measures(case, row.role) if m["id"] in sub.values["measure"]]
        if chosen:
            cases.add_comment(me(), case, _("Standard measures carried out: %(list)s",
                                            list="; ".join(chosen)), now=now())
    except (ValidationFailed, Conflict) as exc:
        db.session.rollback()
        row, case = _task_and_case(task_id)
        errors = translated_errors(exc.details) if isinstance(exc, ValidationFailed) else {}
        return _render_task(row, case, sub.values, errors, exc.message, exc.status)
    db.session.commit()
    flash(_("Done: %(step)s.", step=row.name), "success")
    return redirect(_next_step(me(), case))


# ---------------------------------------------------------------- case page


@bp.get("/cases/<case_no>")
@login_required
def case_page(case_no: str) -> str:
    user = me()
    case = cases.get_case_by_no(user, case_no)
    version = _version(case)
    events = history.events_of(case)
    everything = request.args.get("events") == "all"
    tasks = list(db.session.scalars(select(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status == "ready").order_by(CaseTask.id)))
    alerts = list(db.session.scalars(select(Alert).where(Alert.case_id == case.id)
                                     .order_by(Alert.received_at.desc(), Alert.id.desc())
                                     .limit(200)))
    return render_template(
        "cases/case.html", case=case, version=version, tasks=tasks, alerts=alerts,
        can_act={t.id: _can_act(user, t) for t in tasks},
        point=db.session.get(MonitoringPoint, case.point_id) if case.point_id else None,
        timeline=history.timeline(case, events, compiled(version), everything=everything),
        everything=everything, event_count=len(events),
        diagram=history.diagram(case, version, events,
                                request.args.get("diagram") or case.process_id),
        has_diagram=history.diagram_macro_exists(), measures=_measures(case),
        attachments=attachments(case),
        comments=list(db.session.scalars(select(CaseComment).where(
            CaseComment.case_id == case.id).order_by(CaseComment.id))),
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
    return redirect(_safe_next(url_for("cases.notifications")))
