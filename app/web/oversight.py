"""Oversight pages: the case list and its exports, the duty board, the risk map, and handing
tasks to named people or following a case."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers.response import Response as Redirect

from app.extensions import db
from app.i18n import _l
from app.inputs import db_id
from app.services import assignment, audit, case_export, case_search, duty_board
from app.services.errors import ValidationFailed
from app.services.permissions import require
from app.timezone import local_zone
from app.web.util import local_target, me, now, remote_addr

bp = Blueprint("oversight", __name__)


@bp.app_template_global()
def delegation_choices(task: Any) -> list[Any]:
    """The people the signed-in user may hand `task` to (empty: no hand-over form)."""
    return assignment.candidates(me(), task)


@bp.app_template_global()
def is_following(case: Any) -> bool:
    return assignment.is_following(me(), case)

# Column headings of the exports, in the order of case_export.EXPORT_COLUMNS.
EXPORT_HEADINGS = ("案件编号", "状态", "当前等级", "最高等级", "场景", "预警事项", "街镇",
                   "责任部门", "闭环层级", "来源类型", "监测点", "报警次数", "最新值", "单位",
                   "立案时间", "接单时间", "结案时间", "时限", "结论")
EXPORT_FORMATS = ("csv", "xlsx")
XLSX_CHUNK = 256 * 1024


# ---------------------------------------------------------------- case list


@bp.get("/cases/")
@login_required
def case_list() -> tuple[str, int]:
    user = me()
    errors: dict[str, list[str]] = {}
    try:
        query = case_search.parse_query(request.args)
    except ValidationFailed as exc:
        errors = exc.details
        query = case_search.CaseQuery()
    found = case_search.search(user, query, now=now())
    params = query.params()

    def link(drop: str | None = None, add: tuple[str, str] | None = None,
             toggle: tuple[str, str] | None = None, page: int | None = None) -> str:
        pairs = [(k, v) for k, v in params if k != drop and k != "page"]
        if toggle is not None:
            pairs = [p for p in pairs if p != toggle] if toggle in pairs else [*pairs, toggle]
        if add is not None:
            pairs = [p for p in pairs if p[0] != add[0]] + [add]
        if page and page > 1:
            pairs.append(("page", str(page)))
        return url_for("oversight.case_list") + _query_string(pairs)

    return render_template(
        "oversight/case_list.html", found=found, query=query, params=params, link=link,
        errors=errors, export_query=_query_string(params), sorts=SORT_LABELS, found_now=now(),
        scenarios=case_search.scenario_names()), (422 if errors else 200)


def _query_string(pairs: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return ("?" + urlencode(pairs)) if pairs else ""


SORT_LABELS = {"-opened": _l("Newest first"), "opened": _l("Oldest first"),
               "-level": _l("Highest level first"), "due": _l("Deadline first"),
               "-closed": _l("Recently closed"), "case_no": _l("Case number")}


# ---------------------------------------------------------------- exports


def _csv_rows(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # Excel opens UTF-8 CSV with Chinese text correctly with a BOM
    writer.writerow(EXPORT_HEADINGS)
    for n, row in enumerate(rows, 1):
        writer.writerow([row[c] for c in case_export.EXPORT_COLUMNS])
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _xlsx_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """A write-only workbook (rows go to a temporary file as they come), then its bytes."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("案件")
    sheet.append(list(EXPORT_HEADINGS))
    for row in rows:
        sheet.append([row[c] for c in case_export.EXPORT_COLUMNS])
    with tempfile.TemporaryFile() as spool:
        book.save(spool)
        spool.seek(0)
        while chunk := spool.read(XLSX_CHUNK):
            yield chunk


@bp.get("/cases/export")
@login_required
def export() -> Response:
    """The filtered list as CSV or XLSX, streamed; `X-Export-Rows` says how many rows come so
    the page can show progress. Every export is audited."""
    user = me()
    fmt = request.args.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(_("Please correct the marked fields."),
                               details={"format": [_("Must be one of: %(choices)s.",
                                                     choices=", ".join(EXPORT_FORMATS))]})
    args = MultiDict([(k, v) for k, v in request.args.items(multi=True) if k != "format"])
    query = case_search.parse_query(args)
    at = now()
    total = case_export.count(user, query, now=at)
    audit.record(actor=user, action="cases.export", object_type="case_list",
                 after={"format": fmt, "rows": total, "query": query.params()}, at=at,
                 remote_addr=remote_addr())
    db.session.commit()
    # The scope is read now: the rows stream after the view has returned.
    rows = case_export.export_rows(case_search.scope_of(user), query, now=at)
    stamp = at.astimezone(local_zone()).strftime("%Y%m%d-%H%M")
    if fmt == "csv":
        body: Iterator[Any] = (s.encode("utf-8") for s in _csv_rows(rows))
        mimetype = "text/csv; charset=utf-8"
    else:
        body = _xlsx_chunks(rows)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="cases-{stamp}.{fmt}"'
    response.headers["X-Export-Rows"] = str(total)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---------------------------------------------------------------- duty board and map


@bp.get("/board")
@login_required
def board_page() -> str:
    require(me(), "board.view")
    department = request.args.get("department") or None
    figures = duty_board.board(me(), now=now(), department=department)
    return render_template("oversight/board.html", figures=figures,
                           big=request.args.get("screen") == "big")


@bp.get("/board/data")
@login_required
def board_data() -> tuple[Any, int]:
    require(me(), "board.view")
    department = request.args.get("department") or None
    return jsonify(duty_board.board(me(), now=now(), department=department)), 200


@bp.get("/map")
@login_required
def map_page() -> str:
    require(me(), "board.view")
    return render_template("oversight/map.html", scenarios=case_search.scenario_names(),
                           note=duty_board.centroids()["source"],
                           datum=duty_board.centroids()["datum"])


@bp.get("/map/data")
@login_required
def map_data() -> tuple[Any, int]:
    require(me(), "board.view")
    query = case_search.parse_query(MultiDict(
        [(k, v) for k, v in request.args.items(multi=True) if k in ("scenario", "level")]))
    return jsonify(duty_board.risk_map(me(), now=now(), scenarios=query.scenarios,
                                       levels=query.levels)), 200


# ---------------------------------------------------------------- assignment


@bp.post("/tasks/<int:task_id>/delegate")
@login_required
def delegate(task_id: int) -> Redirect:
    user = me()
    row = assignment.task_for_assigning(user, task_id)  # refusals before the form is read
    back = local_target(request.form.get("next"),
                        url_for("cases.case_page", case_no=row.case.case_no))
    try:
        done = assignment.delegate(user, task_id, db_id(request.form.get("to")) or 0,
                                   request.form.get("reason", ""), now=now(),
                                   remote_addr=remote_addr())
    except ValidationFailed as exc:
        db.session.rollback()
        problems = "; ".join(m for ms in exc.details.values() for m in ms) or str(exc.message)
        flash(_("Task not handed over: %(reason)s", reason=problems), "error")
        return redirect(back)
    name = done.claimed_by.display_name if done.claimed_by else "-"
    db.session.commit()
    flash(_("%(step)s handed to %(name)s.", step=done.name, name=name), "success")
    return redirect(back)


@bp.post("/cases/<case_no>/follow")
@login_required
def follow(case_no: str) -> Redirect:
    on = request.form.get("on", "1") != "0"
    assignment.follow(me(), case_no, on=on, now=now())
    db.session.commit()
    flash(_("You follow this case: its steps reach you as notifications.") if on
          else _("You no longer follow this case."), "success")
    return redirect(url_for("cases.case_page", case_no=case_no))
