"""Process designer: open a handbook version's BPMN in the modeler, validate edits, preview marks.

Edits are not saved here: the business administrator exports the file, commits it to `bpmn/`
and deploys it with `flask handbooks deploy`, which creates the next draft version. The
modeler and its check need `handbook.design` on the handbook's owning node; the preview is a
read-only diagram, like a case page's, and needs only `handbook.view`.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, jsonify, render_template, request
from flask_login import login_required
from werkzeug.wrappers.response import Response

from app.i18n import _l
from app.inputs import ID_MAX, json_object
from app.models import HandbookVersion
from app.services import handbooks, problem_text
from app.services.errors import NotFound, ValidationFailed
from app.services.permissions import can, require
from app.web.util import me
from workflows import Problem
from workflows.documents import DEFAULT_MAX_FILE_BYTES, declare_utf8

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
    """What deploying `xml` as file `name` of `version` would refuse (engine, handbook checks)."""
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
    version = _bpmn_of(version_id, name)
    require(me(), "handbook.design", version.node)
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
