"""Cases and tasks for mobile clients (session + CSRF header): list, read, act, comment, attach."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from app.api.auth import json_body, load, me, now, query_args, signed_in
from app.api.schemas import (
    AttachmentOutSchema,
    CaseDetailSchema,
    CaseListArgs,
    CasePageSchema,
    CommentOutSchema,
    CommentSchema,
    CompletedSchema,
    FormFieldSchema,
    InboxArgs,
    InboxPageSchema,
    OpenTaskSchema,
)
from app.extensions import db
from app.i18n import _l
from app.models import (
    Case,
    CaseTask,
    HandbookVersion,
    PlatformNode,
    User,
)
from app.services import case_search, case_view, cases, inbox
from app.services.engine import compiled
from app.services.errors import DomainError, ValidationFailed
from app.services.permissions import require
from workflows import CompiledVersion

bp = Blueprint("cases", __name__)

ALERTS_SHOWN = 200
# Multipart overhead on top of the largest file the service accepts.
MAX_UPLOAD_BYTES = cases.MAX_ATTACHMENT_BYTES + 256 * 1024
FORM_BODY_BYTES = 64 * 1024


def _page(total: int, page: int, per_page: int) -> dict[str, int]:
    return {"total": total, "page": page, "per_page": per_page,
            "pages": max(1, -(-total // per_page))}


def _town(node_id: int) -> PlatformNode:
    node = db.session.get(PlatformNode, node_id)
    if node is None:
        raise ValidationFailed(_l("Please correct the marked fields."),
                               details={"town": [str(_l("No such platform node."))]})
    return node


@bp.get("/cases")
@signed_in
def list_cases() -> tuple[Any, int]:
    """Cases in the caller's scope matching the case-list filters, with facet counts."""
    query_args(CaseListArgs())  # types and ranges of the single-valued parameters
    found = case_search.search(me(), case_search.parse_query(request.args), now=now(),
                               with_facets=request.args.get("facets", "1") != "0")
    body = CasePageSchema().dump({
        "items": found.items, "facets": {name: [vars(v) for v in values]
                                         for name, values in found.facets.items()},
        **_page(found.total, found.query.page, found.query.per_page)})
    return jsonify(body), 200


def _spec(case: Case) -> CompiledVersion:
    version = db.session.get(HandbookVersion, case.handbook_version_id)
    assert version is not None
    return compiled(version)


def _open_tasks(user: User, case: Case, tasks: list[CaseTask] | None = None,
                may: dict[int, bool] | None = None) -> list[dict[str, Any]]:
    """The case's ready tasks with their forms and whether `user` may act on each (the
    rule of `cases.can_act`, as on the case page)."""
    rows = tasks if tasks is not None else list(db.session.scalars(select(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status == "ready").order_by(CaseTask.id)))
    if not rows:
        return []
    spec = _spec(case)
    return [_with_form(row, spec, may[row.id] if may is not None else cases.can_act(user, row))
            for row in rows]


def _with_form(task: CaseTask, spec: CompiledVersion, can_act: bool) -> dict[str, Any]:
    dumped: dict[str, Any] = OpenTaskSchema(exclude=("can_act", "form")).dump(task)
    dumped["can_act"] = can_act
    dumped["form"] = FormFieldSchema(many=True).dump(
        spec.form_fields(task.process_id, task.element_id))
    return dumped


@bp.get("/cases/<case_no>")
@signed_in
def case_detail(case_no: str) -> tuple[Any, int]:
    """One case: summary, alerts, open tasks with forms, comments, evidence, history."""
    user = me()
    view = case_view.case_view(user, case_no, alerts=ALERTS_SHOWN)
    body = CaseDetailSchema(exclude=("tasks",)).dump({
        "case": view.case, "point": view.point, "alerts": list(reversed(view.alerts)),
        "comments": view.comments, "attachments": view.attachments, "events": view.events,
    })
    body["tasks"] = _open_tasks(user, view.case, view.tasks, view.can_act)
    return jsonify(body), 200


@bp.get("/tasks/mine")
@signed_in
def my_tasks() -> tuple[Any, int]:
    """The caller's inbox: tasks assigned to them or open to claim, overdue first."""
    args = query_args(InboxArgs())
    town = _town(args["town"]).id if "town" in args else None
    flt = inbox.InboxFilter(scenario=args.get("scenario"), level=args.get("level"),
                            town_node_id=town, status=args["status"],
                            overdue_only=args["overdue"], case_no=args.get("case_no"))
    found = inbox.inbox(me(), flt, now=now(), page=args["page"], per_page=args["per_page"])
    body = InboxPageSchema().dump({"items": found.items, "counts": found.counts,
                                   **_page(found.total, found.page, found.per_page)})
    return jsonify(body), 200


def _task_answer(user: User, task: CaseTask) -> tuple[Any, int]:
    db.session.expire(task, ["claimed_by"])  # the service changed only the id
    body = _with_form(task, _spec(task.case), cases.can_act(user, task))
    db.session.commit()
    return jsonify(body), 200


@bp.post("/tasks/<int:task_id>/claim")
@signed_in
def claim_task(task_id: int) -> tuple[Any, int]:
    user = me()
    return _task_answer(user, cases.claim(user, task_id, now=now()))


@bp.post("/tasks/<int:task_id>/release")
@signed_in
def release_task(task_id: int) -> tuple[Any, int]:
    user = me()
    return _task_answer(user, cases.release(user, task_id, now=now()))


@bp.post("/tasks/<int:task_id>/complete")
@signed_in
def complete_task(task_id: int) -> tuple[Any, int]:
    """Complete a task with its form (a JSON object: field id -> value)."""
    user = me()
    cases.task_to_act_on(user, task_id)
    form = json_body(limit=FORM_BODY_BYTES)
    case = cases.complete(user, task_id, form, now=now())
    body = CompletedSchema(exclude=("tasks",)).dump({"case": case})
    body["tasks"] = _open_tasks(user, case)
    db.session.commit()
    return jsonify(body), 200


@bp.post("/cases/<case_no>/comments")
@signed_in
def add_comment(case_no: str) -> tuple[Any, int]:
    user = me()
    case = cases.get_case_by_no(user, case_no)
    require(user, "case.act", case)  # before the body is read
    given = load(CommentSchema(), json_body(limit=FORM_BODY_BYTES))
    comment = cases.add_comment(user, case, given["body"], now=now())
    body = CommentOutSchema().dump(comment)
    db.session.commit()
    return jsonify(body), 201


@bp.post("/cases/<case_no>/attachments")
@signed_in
def add_attachment(case_no: str) -> tuple[Any, int]:
    """Evidence as multipart/form-data in the `file` part (JPEG, PNG, WebP, PDF; 10 MB)."""
    user = me()
    case = cases.get_case_by_no(user, case_no)
    require(user, "case.act", case)  # before the body is read
    request.max_content_length = MAX_UPLOAD_BYTES
    if request.mimetype != "multipart/form-data":
        raise DomainError(_l("Send the file as multipart/form-data in a part named file."),
                          code="unsupported_content_type", status=400,
                          details={"Content-Type": [request.mimetype or "-"]})
    upload = request.files.get("file")
    if upload is None:
        raise ValidationFailed(_l("Please correct the marked fields."),
                               details={"file": [str(_l("Missing data for required field."))]})
    attachment = cases.add_attachment(
        user, case, filename=upload.filename or "",
        content=upload.read(cases.MAX_ATTACHMENT_BYTES + 1), now=now())
    body = AttachmentOutSchema().dump(attachment)
    db.session.commit()
    return jsonify(body), 201
