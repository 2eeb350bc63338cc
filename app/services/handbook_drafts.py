"""Drafts edited in the designer's workspace: import a BPMN file, check it, save it (optimistic
concurrency: a stale revision is a conflict naming who saved and when).

A handbook has at most one open draft. The workspace opens it, or starts one from any version
of the handbook; the draft keeps the version it started from (its base) for the comparison a
reviewer sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.i18n import _l
from app.models import HandbookVersion, User, VersionStatus
from app.services import audit, handbooks, problem_text, test_runs
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.handbook_data_diff import DataChange, data_changes
from app.services.handbook_diff import content_hash, diff_bundles
from app.services.permissions import require
from app.timezone import local_zone
from workflows import Problem
from workflows.documents import (
    BPMN_NS,
    CAMUNDA_NS,
    DEFAULT_MAX_FILE_BYTES,
    declare_utf8,
    document_text,
    parse_document,
    text_bytes,
)

BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
# Namespaces the modeller and the engine understand; anything else is kept but ignored.
KNOWN_NAMESPACES = frozenset({
    BPMN_NS, BPMNDI_NS, CAMUNDA_NS,
    "http://www.omg.org/spec/DD/20100524/DC", "http://www.omg.org/spec/DD/20100524/DI",
    "http://www.w3.org/2001/XMLSchema-instance", "http://www.w3.org/2001/XMLSchema",
    "http://bpmn.io/schema/bpmn", "http://www.w3.org/XML/1998/namespace",
    "http://camunda.org/schema/modeler/1.0",
})
FILE_NAME = re.compile(r"^bpmn/(?:shared/)?[A-Za-z0-9_][A-Za-z0-9_.-]{0,98}\.bpmn$")
MAX_FILES_PER_SAVE = 30
MAX_NOTE = 2000


@dataclass(frozen=True)
class ImportedFile:
    """An uploaded BPMN file as the text the workspace edits, with what the user should know."""

    name: str
    xml: str
    warnings: list[str] = field(default_factory=list)


def _problem_dicts(problems: list[Problem]) -> list[dict[str, object]]:
    return [problem_text.as_dict(p) for p in problems]


def _refuse(name: str, problems: list[Problem]) -> ValidationFailed:
    first = problem_text.text(problems[0]) if problems else ""
    return ValidationFailed(
        _l("The file %(name)s cannot be used: %(problem)s", name=name, problem=first),
        code="bad_bpmn_file", details={"problems": _problem_dicts(problems)})


def check_file_name(name: Any) -> str:
    if not isinstance(name, str) or not FILE_NAME.match(name):
        raise ValidationFailed(
            _l("A BPMN file name is bpmn/NAME.bpmn (letters, digits, _ . -), e.g. "
               "bpmn/scenario_gas.bpmn."), code="bad_file_name",
            details={"name": [str(_l("Not a BPMN file name."))]})
    return name


def _rebind_camunda_prefix(text: str, uri: str) -> str:
    """A file that binds the `camunda` prefix to another namespace URI: name that namespace
    `camunda_other` instead, so the modeller can bind `camunda` to Camunda's own again."""
    new = "camunda_other"
    while f"{new}:" in text or f"xmlns:{new}=" in text:
        new += "_"
    text = re.sub(r"xmlns:camunda(\s*=\s*)([\"'])" + re.escape(uri) + r"\2",
                  lambda m: f"xmlns:{new}{m.group(1)}{m.group(2)}{uri}{m.group(2)}", text)
    text = re.sub(r"(</?)camunda:", rf"\1{new}:", text)
    return re.sub(r"(\s)camunda:([\w.-]+\s*=)", rf"\1{new}:\2", text)


_FOREIGN_CAMUNDA = re.compile(r"xmlns:camunda\s*=\s*([\"'])(.*?)\1")


def read_upload(name: str, content: bytes, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
                ) -> ImportedFile:
    """An uploaded `.bpmn` (any encoding) as UTF-8 text for the modeller, or a refusal naming
    what is wrong: not XML, a DOCTYPE, too large, not BPMN, no diagram to draw."""
    name = check_file_name(name)
    if not content.strip():
        raise _refuse(name, [Problem(name, None, None, "the file is empty", code="file_empty")])
    text, problems = document_text(name, content, max_bytes)
    if text is None:
        raise _refuse(name, problems)
    warnings: list[str] = []
    # A file that binds camunda: to another namespace is read with that prefix renamed, so the
    # engine's check (which refuses such a binding) sees what the modeller will save.
    foreign = _FOREIGN_CAMUNDA.search(text)
    if foreign is not None and foreign.group(2) != CAMUNDA_NS:
        uri = foreign.group(2)
        text = _rebind_camunda_prefix(text, uri)
        warnings.append(str(_l("The prefix camunda: was bound to %(uri)s; that namespace is now "
                               "named camunda_other: and is ignored by the engine.", uri=uri)))
    document, problems = parse_document(name, text_bytes(text), max_bytes)
    if document is None:
        raise _refuse(name, problems)
    root = document.root
    if not root.findall(f"{{{BPMNDI_NS}}}BPMNDiagram/{{{BPMNDI_NS}}}BPMNPlane/*"):
        raise _refuse(name, [Problem(name, None, None, str(_l(
            "the file has no diagram layout (no BPMNDiagram with shapes); lay it out in the "
            "modeller it came from and export it again")), code="no_diagram_layout")])
    processes = [p.get("id") or "?" for p in root.findall(f"{{{BPMN_NS}}}process")]
    if not processes:
        raise _refuse(name, [Problem(name, None, None, str(_l(
            "the file defines no process; a handbook file holds at least one process")),
            code="file_without_process")])
    if len(processes) > 1:
        warnings.append(str(_l("The file defines %(n)d processes (%(ids)s): a case starts the "
                               "handbook's entry process; the others must be called from it.",
                               n=len(processes), ids=", ".join(processes))))
    used = {etree.QName(name).namespace or "" for el in root.iter(etree.Element)
            for name in [el.tag, *el.attrib]}
    unknown = sorted(used - KNOWN_NAMESPACES - {""})
    for uri in unknown:
        warnings.append(str(_l("Elements of the namespace %(uri)s are kept in the file but "
                               "ignored by the engine.", uri=uri)))
    return ImportedFile(name, text, warnings)


def check_files(version: HandbookVersion, files: dict[str, str]) -> list[Problem]:
    """What saving `files` as the bundle of `version`'s handbook would refuse: the engine's
    compile, the handbook's rules and steps running cases still wait in."""
    return handbooks.check_draft(version, files)


def open_draft(key: str) -> HandbookVersion | None:
    """The handbook's open draft (at most one is kept open by `save_draft`)."""
    return db.session.scalar(select(HandbookVersion).where(
        HandbookVersion.handbook_key == key, HandbookVersion.status == VersionStatus.DRAFT)
        .order_by(HandbookVersion.number.desc()).limit(1))


def last_editor(version: HandbookVersion) -> tuple[str, datetime]:
    """Who saved the version last and when, as people read it (a name, not a log-in)."""
    user = version.updated_by or version.author
    name = user.display_name if user is not None else version.author_name
    return name, version.updated_at or version.created_at


def _stale(draft: HandbookVersion) -> Conflict:
    who, when = last_editor(draft)
    local = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(local_zone())
    return Conflict(
        _l("%(who)s saved this draft (revision %(revision)d) at %(when)s, after you opened it. "
           "Compare the two, then save again.", who=who,
           revision=draft.revision, when=local.strftime("%Y-%m-%d %H:%M")),
        code="stale_draft",
        details={"draft_id": draft.id, "revision": draft.revision, "updated_by": who,
                 "updated_at": when.isoformat(), "status": draft.status.value})


@dataclass(frozen=True)
class Saved:
    version: HandbookVersion
    problems: list[Problem]
    created: bool
    # Open test runs of the draft left behind by this save (they started on other files).
    outdated_runs: int = 0


def _clean_files(files: Any) -> dict[str, str]:
    if not isinstance(files, dict) or not files:
        raise ValidationFailed(_l("Send at least one BPMN file to save."),
                               details={"files": [str(_l("Required."))]})
    if len(files) > MAX_FILES_PER_SAVE:
        raise ValidationFailed(_l("Too many files in one save (at most %(n)d).",
                                  n=MAX_FILES_PER_SAVE), details={"files": ["too many"]})
    clean: dict[str, str] = {}
    problems: list[Problem] = []
    for name, xml in files.items():
        check_file_name(name)
        if not isinstance(xml, str) or not xml.strip():
            raise ValidationFailed(_l("The diagram XML of %(name)s is missing.", name=name),
                                   details={"files": {name: [str(_l("Required."))]}})
        text = declare_utf8(xml)
        document, found = parse_document(name, text_bytes(text))
        if document is None:
            problems += found
        else:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(Problem(name, None, None, "the text holds characters that are "
                                                          "not Unicode (lone surrogates)",
                                        code="file_surrogates"))
        clean[name] = text
    if problems:
        raise _refuse(problems[0].file, problems)
    return clean


def save_draft(actor: User, key: str, *, draft_id: int | None, revision: int | None,
               source_version_id: int, files: Any, note: str, now: datetime) -> Saved:
    """Write the workspace's files into the handbook's draft (a new one when there is none).

    `source_version_id` is the version whose files the workspace opened (the draft itself, or
    any version a draft is started from); `draft_id` and `revision` are the draft as the
    workspace knew it (None: there was none). When the draft moved on since (someone saved,
    submitted it or started one) the save is refused naming who and when. Files that do not
    parse are refused whole; engine and handbook problems are returned, not refused: a draft
    may be unfinished."""
    source = handbooks.get_version(source_version_id)
    if source.handbook_key != key:
        raise NotFound(_l("No such handbook version."))
    require(actor, "handbook.draft", source.node)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ValidationFailed(_l("The change note is too long (at most %(n)d characters).",
                                  n=MAX_NOTE), details={"note": ["too long"]})
    clean = _clean_files(files)
    current = open_draft(key)
    draft: HandbookVersion | None
    if draft_id is None:
        if current is not None:
            raise _stale(current)
        draft = None
    else:
        draft = db.session.get(HandbookVersion, draft_id)
        if draft is None or draft.handbook_key != key:
            raise NotFound(_l("No such handbook version."))
        if draft.status != VersionStatus.DRAFT or draft.revision != revision:
            raise _stale(draft)
    new_files = {**source.files, **clean}
    # The draft is compared with the version it started from.
    base = base_of(source) if draft is not None and source.id == draft.id else source
    diff = diff_bundles(base.files if base is not None else None, new_files)
    if draft is None:
        latest = handbooks.latest_version(key)
        draft = HandbookVersion(
            handbook_key=key, node=source.node, number=(latest.number if latest else 0) + 1,
            status=VersionStatus.DRAFT, process_id=source.process_id,
            author_id=actor.id, author_name=actor.username, created_at=now, revision=0)
    if source.id != draft.id:
        draft.base_version_id = source.id
    before = {"revision": draft.revision, "hash": draft.content_hash}
    new_hash = content_hash(new_files)
    # Test cases keep running on the files they started on; saving other files ends them.
    outdated = (len(test_runs.outdated_runs(draft, new_hash))
                if before["revision"] else 0)
    draft.files = new_files
    draft.content_hash = new_hash
    draft.diff_summary = diff
    draft.revision = (draft.revision or 0) + 1
    draft.updated_at, draft.updated_by_id = now, actor.id
    if note:
        draft.change_note = note
    if before["revision"] == 0:
        try:
            with db.session.begin_nested():  # another workspace may take the number first
                db.session.add(draft)
                db.session.flush()
        except IntegrityError:
            taken = open_draft(key)
            if taken is None:
                raise
            raise _stale(taken) from None
    db.session.flush()
    audit.record(actor=actor, action="handbook.draft_save", object_type="handbook_version",
                 object_id=draft.id, before=before,
                 after={"handbook": key, "number": draft.number, "revision": draft.revision,
                        "hash": draft.content_hash, "files": sorted(clean),
                        "outdated_runs": outdated}, at=now)
    return Saved(draft, check_files(draft, new_files), created=before["revision"] == 0,
                 outdated_runs=outdated)


@dataclass(frozen=True)
class ReviewReport:
    base: HandbookVersion | None
    changed_files: list[str]
    data_changes: list[DataChange]
    problems: list[Problem]


def base_of(version: HandbookVersion) -> HandbookVersion | None:
    """The version a draft started from, else the one numbered before it."""
    if version.base_version_id is not None:
        return db.session.get(HandbookVersion, version.base_version_id)
    return db.session.scalar(select(HandbookVersion).where(
        HandbookVersion.handbook_key == version.handbook_key,
        HandbookVersion.number < version.number)
        .order_by(HandbookVersion.number.desc()).limit(1))


def review_report(version: HandbookVersion) -> ReviewReport:
    """What the review page shows besides the diagrams: changed files, data changes, problems."""
    base = base_of(version)
    old = base.files if base is not None else {}
    changed = sorted(n for n in set(old) | set(version.files)
                     if n.endswith(".bpmn") and old.get(n) != version.files.get(n))
    return ReviewReport(base, changed, data_changes(old, version.files),
                        check_files(version, version.files))
