"""Process designer: the workspace of a handbook (open its draft or start one from any
version, import, check, save), the visual comparison of versions, and the case preview.

The modeller and its check need `handbook.design` on the handbook's owning node; saving a draft
needs `handbook.draft`; the preview and the comparison are read-only and need `handbook.view`.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.i18n import _l
from app.inputs import ID_MAX, db_id, json_object
from app.models import HandbookVersion
from app.services import handbook_data_diff, handbook_drafts, handbooks, problem_text
from app.services.errors import NotFound, ValidationFailed
from app.services.permissions import can, require
from app.web.util import me, now
from workflows import Problem
from workflows.documents import DEFAULT_MAX_FILE_BYTES, declare_utf8, text_bytes

bp = Blueprint("designer", __name__, url_prefix="/designer")

MARK_KINDS = ("completed", "active", "overdue")
_ELEMENT_ID = re.compile(r"^[A-Za-z_][\w.-]{0,199}$")


def _bpmn_names(version: HandbookVersion) -> list[str]:
    """The version's BPMN files, its own process file first."""
    own = process_file(version)
    return sorted((n for n in version.files if n.endswith(".bpmn")), key=lambda n: (n != own, n))


def process_file(version: HandbookVersion) -> str:
    """The file that draws the version's entry process (the one a case diagram shows)."""
    name = f"bpmn/{version.process_id}.bpmn"
    if name in version.files:
        return name
    return next((n for n in sorted(version.files) if n.endswith(".bpmn")), name)


def _bpmn_of(version_id: int, name: str) -> HandbookVersion:
    version = handbooks.get_version(version_id)
    _require_bpmn(version, name)
    return version


def _require_bpmn(version: HandbookVersion, name: str) -> None:
    if not name.endswith(".bpmn") or name not in version.files:
        abort(404)


def _own_and_shared(version: HandbookVersion) -> tuple[list[str], list[str]]:
    shared_dir = f"bpmn/{handbooks.SHARED_BPMN}/"
    names = _bpmn_names(version)
    return ([n for n in names if not n.startswith(shared_dir)],
            [n for n in names if n.startswith(shared_dir)])


@bp.get("/")
@login_required
def index() -> str:
    user = me()
    require(user, "handbook.design")
    rows = [(row, [(v, *_own_and_shared(v)) for v in handbooks.versions_of(row.key)])
            for row in handbooks.overview() if can(user, "handbook.design", row.node)]
    return render_template("designer/index.html", rows=rows)


@bp.get("/versions/<int:version_id>/<path:name>")
@login_required
def modeler(version_id: int, name: str) -> str:
    require(me(), "handbook.design")
    version = _bpmn_of(version_id, name)
    require(me(), "handbook.design", version.node)
    return render_template("designer/modeler.html", version=version, name=name,
                           process_file=process_file(version))


def version_problems(version: HandbookVersion, name: str, xml: str) -> list[Problem]:
    """What publishing `xml` as file `name` of `version` would refuse (engine, handbook checks)."""
    # The browser's text may still declare another encoding, or hold lone surrogates.
    return handbooks.check_draft(version, {**version.files, name: declare_utf8(xml)})


@bp.post("/validate")
@login_required
def validate() -> Response:
    require(me(), "handbook.design")  # before the body is read: nothing runs for others
    if (request.content_length or 0) > 2 * DEFAULT_MAX_FILE_BYTES:
        abort(413)
    payload = json_object()
    name, xml, version_id = payload.get("name"), payload.get("xml"), payload.get("version_id")
    if not isinstance(xml, str) or not xml.strip():
        raise ValidationFailed(_l("The diagram XML is missing."),
                               details={"xml": [str(_l("Required."))]})
    if not isinstance(name, str) or not name.endswith(".bpmn"):
        raise ValidationFailed(_l("Name the BPMN file (ending in .bpmn)."),
                               details={"name": [str(_l("Required."))]})
    if not isinstance(version_id, int) or isinstance(version_id, bool):
        raise ValidationFailed(_l("No such handbook version."),
                               details={"version_id": [str(_l("Required."))]})
    if not 0 < version_id <= ID_MAX:
        raise NotFound(_l("No such handbook version."))
    version = handbooks.get_version(version_id)
    require(me(), "handbook.design", version.node)
    # A file imported into the workspace has a name the stored version does not know yet.
    handbook_drafts.check_file_name(name)
    problems = version_problems(version, name, xml)
    return jsonify({"valid": not any(p.severity == "error" for p in problems),
                    "problems": [problem_text.as_dict(p) for p in problems]})


def _element_ids(values: list[str]) -> list[str]:
    ids = [part.strip() for value in values for part in value.split(",")]
    return list(dict.fromkeys(i for i in ids if _ELEMENT_ID.match(i)))[:500]


@bp.get("/preview/<int:version_id>")
@login_required
def preview(version_id: int) -> str:
    """The case diagram of a version with chosen elements marked, as a case page shows it."""
    require(me(), "handbook.view")
    version = handbooks.get_version(version_id)
    name = request.args.get("file") or process_file(version)
    _require_bpmn(version, name)
    marks = {kind: _element_ids(request.args.getlist(kind)) for kind in MARK_KINDS}
    return render_template("designer/preview.html", version=version, name=name, marks=marks,
                           names=_bpmn_names(version))


def _workspace_version(key: str, source_id: int | None) -> tuple[HandbookVersion,
                                                                HandbookVersion | None]:
    """(the version whose files the workspace opens, the open draft if any)."""
    found = handbooks.versions_of(key)
    if not found:
        abort(404)
    draft = handbook_drafts.open_draft(key)
    if source_id is not None:
        source = next((v for v in found if v.id == source_id), None)
        if source is None:
            abort(404)
        return source, draft
    return (draft or handbooks.published_version(key) or found[0]), draft


@bp.get("/handbooks/<key>")
@login_required
def workspace(key: str) -> str:
    """The workspace of one handbook: its open draft, or a draft started from `from`."""
    require(me(), "handbook.design")
    source, draft = _workspace_version(key, db_id(request.args.get("from")))
    require(me(), "handbook.design", source.node)
    names = _bpmn_names(source)
    name = request.args.get("file") or process_file(source)
    if name not in names:
        abort(404)
    editing = draft if draft is not None and draft.id == source.id else None
    editor = handbook_drafts.last_editor(draft) if draft is not None else None
    return render_template("designer/workspace.html", key=key, source=source, draft=draft,
                           editing=editing, editor=editor, name=name, names=names,
                           versions=handbooks.versions_of(key),
                           may_save=can(me(), "handbook.draft", source.node))


@bp.post("/import")
@login_required
def import_file() -> Response:
    """An uploaded (file picker, drop) or pasted BPMN file as UTF-8 text for the modeller."""
    require(me(), "handbook.design")
    if (request.content_length or 0) > 2 * DEFAULT_MAX_FILE_BYTES:
        raise ValidationFailed(_l("The file is too large (at most %(n)d MB).",
                                  n=DEFAULT_MAX_FILE_BYTES // (1024 * 1024)),
                               code="file_too_large")
    upload = request.files.get("file")
    name: Any
    if upload is not None:
        name = request.form.get("name") or ""
        with upload.stream:  # a large upload is spooled to a temporary file
            content = upload.read(DEFAULT_MAX_FILE_BYTES + 1)
    else:
        payload = json_object()
        name, xml = payload.get("name"), payload.get("xml")
        if not isinstance(xml, str) or not xml.strip():
            raise ValidationFailed(_l("The diagram XML is missing."),
                                   details={"xml": [str(_l("Required."))]})
        content = text_bytes(xml)
    imported = handbook_drafts.read_upload(handbook_drafts.check_file_name(name), content)
    return jsonify({"name": imported.name, "xml": imported.xml, "warnings": imported.warnings})


def _optional_int(payload: dict[str, Any], field: str) -> int | None:
    value = payload.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= ID_MAX:
        raise ValidationFailed(_l("%(field)s must be a whole number.", field=field),
                               details={field: [str(_l("Not a number."))]})
    return value


@bp.post("/handbooks/<key>/draft")
@login_required
def save_draft(key: str) -> Response:
    """Save the workspace into the handbook's draft: 409 when the draft moved on since."""
    require(me(), "handbook.draft")
    if (request.content_length or 0) > 8 * DEFAULT_MAX_FILE_BYTES:
        raise ValidationFailed(_l("Too much to save at once."), code="too_large")
    payload = json_object()
    source_id = _optional_int(payload, "source_version_id")
    if source_id is None:
        raise ValidationFailed(_l("Say which version the workspace opened."),
                               details={"source_version_id": [str(_l("Required."))]})
    note = payload.get("note") or ""
    if not isinstance(note, str):
        raise ValidationFailed(_l("The change note must be text."), details={"note": ["text"]})
    saved = handbook_drafts.save_draft(
        me(), key, draft_id=_optional_int(payload, "draft_id"),
        revision=_optional_int(payload, "revision"), source_version_id=source_id,
        files=payload.get("files"), note=note, now=now())
    draft = saved.version
    db.session.commit()
    return jsonify({"draft_id": draft.id, "number": draft.number, "revision": draft.revision,
                    "created": saved.created, "valid": not saved.problems,
                    "outdated_runs": saved.outdated_runs,
                    "problems": [problem_text.as_dict(p) for p in saved.problems],
                    "review_url": url_for("handbooks.review_page", version_id=draft.id),
                    "workspace_url": url_for("designer.workspace", key=key)})


@bp.get("/compare")
@login_required
def compare() -> str:
    """Two versions side by side: elements added, removed and changed, and the data diff."""
    require(me(), "handbook.view")
    new_id, old_id = db_id(request.args.get("new")), db_id(request.args.get("old"))
    if new_id is None:
        abort(404)
    new = handbooks.get_version(new_id)
    # A first version has nothing before it: it is shown against itself, unchanged.
    old = (handbook_drafts.base_of(new) or new) if old_id is None \
        else handbooks.get_version(old_id)
    if old.handbook_key != new.handbook_key:
        abort(404)
    names = sorted(n for n in set(old.files) | set(new.files) if n.endswith(".bpmn"))
    changed = [n for n in names if old.files.get(n) != new.files.get(n)]
    name = request.args.get("file") or (changed[0] if changed else process_file(new))
    if name not in names:
        abort(404)
    return render_template("designer/compare.html", old=old, new=new, name=name, names=names,
                           changed=changed, versions=handbooks.versions_of(new.handbook_key),
                           data_diff=handbook_data_diff.data_changes(old.files, new.files))
