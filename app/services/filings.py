"""Filing (Art 19): each unit files its own operating rules with 区安委办, as a PDF or Word
document checked by its content (not its name), listed per unit with its status, and
acknowledged by 区安委办 (audited)."""

from __future__ import annotations

import hashlib
from datetime import datetime

import filetype
from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.i18n import _l
from app.models import PlatformNode, RuleFiling, User
from app.services import audit
from app.services.cases import display_filename
from app.services.errors import NotFound, ValidationFailed
from app.services.permissions import require, scope_paths
from app.services.scenarios import in_scope

SUBMIT, ACKNOWLEDGE = "filing.submit", "filing.acknowledge"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DOC = "application/msword"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the container of Word 97-2003 files


def detect(content: bytes, filename: str) -> str | None:
    """PDF, DOCX (a zip holding word/), or DOC (an OLE container named .doc); else None."""
    kind = filetype.guess_mime(content)
    if kind in (PDF, DOCX):
        return kind
    if content.startswith(_OLE) and filename.lower().endswith(".doc"):
        return DOC
    return None


def submit(actor: User, *, node_id: int, title: str, filename: str, content: bytes,
           now: datetime) -> RuleFiling:
    node = db.session.get(PlatformNode, node_id)
    if node is None:
        raise ValidationFailed(_l("Please correct the marked fields."),
                               details={"node": [str(_l("Choose your unit."))]})
    require(actor, SUBMIT, node)
    problems: dict[str, list[str]] = {}
    if not title.strip():
        problems["title"] = [str(_l("Required."))]
    most = int(current_app.config["FILING_MAX_MB"]) * 1024 * 1024
    kind = detect(content, filename)
    if not content:
        problems["file"] = [str(_l("Choose a PDF or Word file."))]
    elif len(content) > most:
        problems["file"] = [str(_l("At most %(n)d MB.", n=most // (1024 * 1024)))]
    elif kind is None:
        problems["file"] = [str(_l("Only PDF or Word documents (checked by their content)."))]
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."), details=problems)
    assert kind is not None
    row = RuleFiling(node_id=node.id, title=title.strip()[:200],
                     filename=display_filename(filename), content_type=kind, size=len(content),
                     sha256=hashlib.sha256(content).hexdigest(), content=content,
                     status="submitted", submitted_by_id=actor.id, submitted_at=now)
    db.session.add(row)
    db.session.flush()
    audit.record(actor=actor, action="filing.submit", object_type="rule_filing",
                 object_id=row.id, after={"node": node.code, "title": row.title,
                                          "sha256": row.sha256, "size": row.size}, at=now)
    return row


def acknowledge(actor: User, filing_id: int, *, note: str, now: datetime) -> RuleFiling:
    require(actor, ACKNOWLEDGE)
    row = db.session.get(RuleFiling, filing_id)
    if row is None:
        raise NotFound(_l("No such filing."))
    if row.status != "acknowledged":
        row.status, row.acknowledged_by_id, row.acknowledged_at = "acknowledged", actor.id, now
        row.note = note.strip()[:2000]
        audit.record(actor=actor, action="filing.acknowledge", object_type="rule_filing",
                     object_id=row.id, before={"status": "submitted"},
                     after={"status": "acknowledged", "note": row.note}, at=now)
    return row


def listing(actor: User) -> list[tuple[RuleFiling, PlatformNode]]:
    """Filings per unit: 区安委办 sees all; a unit its own (and those under it)."""
    if not (scope_paths(actor, ACKNOWLEDGE) or scope_paths(actor, SUBMIT)):
        require(actor, SUBMIT)
    paths = scope_paths(actor, ACKNOWLEDGE) + scope_paths(actor, SUBMIT)
    return list(db.session.execute(
        select(RuleFiling, PlatformNode).join(PlatformNode, PlatformNode.id == RuleFiling.node_id)
        .where(in_scope(paths, PlatformNode.path))
        .order_by(PlatformNode.path, RuleFiling.submitted_at.desc())).tuples())


def get(actor: User, filing_id: int) -> RuleFiling:
    for row, _node in listing(actor):
        if row.id == filing_id:
            return row
    raise NotFound(_l("No such filing."))


def units(actor: User) -> list[PlatformNode]:
    """The nodes the actor may file for."""
    paths = scope_paths(actor, SUBMIT)
    return list(db.session.scalars(select(PlatformNode).where(
        PlatformNode.path.in_(paths)).order_by(PlatformNode.path)))
