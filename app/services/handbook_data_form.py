"""The handbook data of a version (`handbooks/scenarios/<key>.json`) as a form.

Every value of the document is a field named by its path (`time_limits.red.accept`,
`warning_items.0.thresholds.yellow.value`); a posted form keeps each value's type, is checked
by the handbook schema and cross-checks with each problem placed on its field, then by the
BPMN cross-checks of the bundle, and only a valid document is saved into the draft's files.

Values marked inferred (`"default": true`, DOMAIN.md *(inferred)*) are listed for review: a
department head confirms each one, and a version with an inferred value left unconfirmed
cannot be approved. What the published version already holds unchanged was reviewed with it
(the installed first version is the baseline), so a draft asks only about inferred values it
adds or changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select

from app.extensions import db
from app.i18n import _l
from app.models import HandbookValueConfirmation, HandbookVersion, User, VersionStatus
from app.services import audit
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.handbook_data import _cross_check, department_codes, platform_scenarios
from app.services.handbook_diff import content_hash, diff_bundles
from app.services.handbook_schema import _Handbook
from app.services.handbooks import _review as review_version
from app.services.handbooks import get_version, published_version
from app.services.permissions import require

Leaf = str | int | float | bool | None
_PATH = re.compile(r"^[A-Za-z0-9_.]{1,300}$")
_LIST_SPLIT = re.compile(r"[,，、\s]+")


def data_file(version: HandbookVersion) -> str:
    return f"handbooks/scenarios/{version.handbook_key}.json"


def document(version: HandbookVersion) -> dict[str, Any]:
    """The version's handbook data as stored (before schema defaults)."""
    name = data_file(version)
    if name not in version.files:
        raise NotFound(_l("This version has no handbook data."))
    loaded: dict[str, Any] = json.loads(version.files[name])
    return loaded


# ---------------------------------------------------------------- paths and field problems


def leaves(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Every value of the document by its path; a list of plain values is one value."""
    found: dict[str, Any] = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(doc, list) and any(isinstance(v, dict | list) for v in doc):
        for index, value in enumerate(doc):
            found.update(leaves(value, f"{prefix}.{index}"))
    else:
        found[prefix] = doc
    return found


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Marshmallow's nested messages as {path: [messages]}."""
    found: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            for where, texts in _flatten(value, path).items():
                found.setdefault(where, []).extend(texts)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        found[prefix] = list(messages)
    elif isinstance(messages, list):
        for item in messages:
            for where, texts in _flatten(item, prefix).items():
                found.setdefault(where, []).extend(texts)
    else:
        found[prefix] = [str(messages)]
    return found


def field_problems(key: str, doc: dict[str, Any]) -> dict[str, list[str]]:
    """The schema's and the cross-checks' problems of a handbook document, per field path
    (a path of a group, e.g. `warning_items.0.thresholds`, when a rule spans its fields)."""
    try:
        loaded = _Handbook().load(doc)
    except ValidationError as exc:
        return _flatten(exc.messages)
    found: dict[str, list[str]] = {}
    for problem in _cross_check(f"{key}.json", loaded, department_codes(),
                                platform_scenarios()):
        path, _, message = problem.partition(": ")
        found.setdefault(path, []).append(message)
    return found


# ---------------------------------------------------------------- reading a posted form


def _number(text: str, integer: bool) -> int | float:
    value = float(text)
    if integer:
        if not value.is_integer():
            raise ValueError(text)
        return int(value)
    return value


def _converted(original: Any, raw: str | None) -> Any:
    """A posted text as a value of the original's type (ValueError when it is not one)."""
    if isinstance(original, bool):
        return raw is not None and raw not in ("", "false", "0")
    text = (raw or "").strip()
    if isinstance(original, list):
        return [part for part in _LIST_SPLIT.split(text) if part]
    if isinstance(original, int | float):
        if not text:
            raise ValueError(text)
        return _number(text, isinstance(original, int) and "." not in text)
    if original is None:
        if not text:
            return None
        try:
            return _number(text, "." not in text)
        except ValueError:
            return text
    return text


def _put(doc: Any, path: str, value: Any) -> None:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@dataclass
class FormResult:
    doc: dict[str, Any]
    values: dict[str, Any]  # what to show in each field (the text posted when it was wrong)
    problems: dict[str, list[str]]


def read_form(original: dict[str, Any], posted: dict[str, str],
              flags: set[str]) -> FormResult:
    """The document with the posted values (`flags`: the paths of ticked checkboxes)."""
    doc = json.loads(json.dumps(original))
    values: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for path, old in leaves(original).items():
        raw = ("true" if path in flags else None) if isinstance(old, bool) else posted.get(path)
        if raw is None and not isinstance(old, bool):
            values[path] = old  # not on the form: kept as it is
            continue
        try:
            value = _converted(old, raw)
        except ValueError:
            values[path] = raw
            problems[path] = [str(_l("Enter a number."))]
            continue
        values[path] = value
        _put(doc, path, value)
    return FormResult(doc, values, problems)


# ---------------------------------------------------------------- saving into a draft


MAX_DOCUMENT_CHARS = 1_000_000


def working_document(version: HandbookVersion, carried: str | None) -> dict[str, Any]:
    """The document being edited: the one the form carries (entries added or removed and
    not saved yet), else the stored one. The schema checks it in full before it is saved."""
    if carried and len(carried) <= MAX_DOCUMENT_CHARS:
        try:
            found = json.loads(carried)
        except ValueError:
            found = None
        if isinstance(found, dict) and found.get("scenario") == version.handbook_key:
            return found
    return document(version)


def _node_at(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


def change_entries(doc: dict[str, Any], operation: str) -> dict[str, Any]:
    """`add:<list>` appends a copy of the list's last entry (to edit); `remove:<list>.<n>`
    drops an entry. A list of entries keeps at least the one it is copied from."""
    kind, _, path = operation.partition(":")
    changed = json.loads(json.dumps(doc))
    try:
        if not _PATH.match(path):
            raise KeyError(path)
        if kind == "add":
            entries = _node_at(changed, path)
            if not (isinstance(entries, list) and entries and isinstance(entries[-1], dict)):
                raise KeyError(path)
            entries.append(json.loads(json.dumps(entries[-1])))
            return changed
        if kind == "remove" and "." in path:
            parent_path, index = path.rsplit(".", 1)
            entries = _node_at(changed, parent_path)
            if isinstance(entries, list) and index.isdigit() and int(index) < len(entries) \
                    and len(entries) > 1:
                del entries[int(index)]
                return changed
    except KeyError:
        pass
    raise ValidationFailed(_l("This entry cannot be added or removed."),
                           details={"fields": {path: [str(_l("This entry cannot be added or "
                                                             "removed."))]}})


def editable(actor: User, version_id: int) -> HandbookVersion:
    version = get_version(version_id)
    require(actor, "handbook.design", version.node)
    document(version)
    return version


def save(actor: User, version_id: int, *, posted: dict[str, str], flags: set[str],
         base_hash: str, note: str, now: datetime, carried: str | None = None
         ) -> HandbookVersion:
    """Save the posted handbook data into the draft's files; all or nothing. `carried` is the
    document the form was drawn from (with entries added or removed), when it carries one."""
    from app.services import problem_text
    from app.services.engine import runtime
    from app.services.handbooks import Bundle, check_bundle

    version = editable(actor, version_id)
    if version.status != VersionStatus.DRAFT:
        raise Conflict(_l("Only a draft can be edited; start a draft from this version."),
                       code="not_a_draft")
    if base_hash and base_hash != version.content_hash:
        raise Conflict(_l("This draft changed after you opened it; reload it and make your "
                          "changes again."), code="stale_draft",
                       details={"content_hash": version.content_hash})
    result = read_form(working_document(version, carried), posted, flags)
    problems = result.problems or field_problems(version.handbook_key, result.doc)
    if not problems:
        files = {**version.files, data_file(version): json.dumps(
            result.doc, ensure_ascii=False, indent=2) + "\n"}
        bundle = Bundle(version.handbook_key, version.node.code, version.process_id, files)
        bpmn = {n: t.encode("utf-8") for n, t in files.items() if n.endswith(".bpmn")}
        for problem in check_bundle(bundle, runtime().compile(bpmn)):
            if problem.severity == "error":
                problems.setdefault("", []).append(problem_text.text(problem))
    if problems:
        raise ValidationFailed(_l("Please correct the marked fields."),
                               details={"fields": problems, "values": result.values,
                                        "doc": result.doc})
    before, old_values = version.content_hash, leaves(document(version))
    base = published_version(version.handbook_key)
    version.files = files
    version.content_hash = content_hash(files)
    version.diff_summary = diff_bundles(base.files if base else None, files)
    if note.strip():
        version.change_note = note.strip()[:2000]
    db.session.flush()
    changed = sorted(p for p, v in leaves(result.doc).items() if old_values.get(p) != v)
    audit.record(actor=actor, action="handbook.data_edit", object_type="handbook_version",
                 object_id=version.id, at=now, before={"hash": before},
                 after={"hash": version.content_hash, "changed": changed})
    return version


# ---------------------------------------------------------------- inferred values at review


@dataclass(frozen=True)
class InferredValue:
    path: str  # the marked group: `time_limits.red`, `warning_items.0.thresholds.yellow`
    value: Any  # the group without its marks
    confirmed_by: str | None
    confirmed_at: datetime | None
    carried: bool  # unchanged from the published version: reviewed with it


def _marked(doc: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    if isinstance(doc, dict):
        if doc.get("default") is True:
            found[prefix] = {k: v for k, v in doc.items() if k not in ("default", "basis")}
        for key, value in doc.items():
            found.update(_marked(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found.update(_marked(value, f"{prefix}.{index}"))
    return found


def inferred_values(version: HandbookVersion) -> list[InferredValue]:
    """The version's inferred values, each confirmed, carried over, or waiting."""
    name = data_file(version)
    if name not in version.files:
        return []
    marked = _marked(json.loads(version.files[name]))
    base = published_version(version.handbook_key)
    # Nothing published yet: the version installed from the reviewed files is the baseline.
    baseline: dict[str, Any] = marked
    if base is not None and base.id != version.id:
        baseline = _marked(json.loads(base.files[name])) if name in base.files else {}
    confirmations = {c.path: c for c in db.session.scalars(select(HandbookValueConfirmation)
                     .where(HandbookValueConfirmation.version_id == version.id))}
    result = []
    for path, value in marked.items():
        found = confirmations.get(path)
        if found is not None and found.value != value:
            found = None  # confirmed another value (the draft changed since)
        result.append(InferredValue(
            path, value, found.confirmed_by.display_name if found else None,
            found.confirmed_at if found else None, baseline.get(path) == value))
    return result


def unconfirmed(version: HandbookVersion) -> list[str]:
    return [v.path for v in inferred_values(version) if not v.carried and v.confirmed_at is None]


def confirm(actor: User, version_id: int, path: str, *, now: datetime) -> InferredValue:
    """A reviewer confirms one inferred value of a version in review."""
    # The same reviewer as for approving: in review, on the owning node, not its author.
    version = review_version(actor, version_id)
    wanted = next((v for v in inferred_values(version) if v.path == path), None) \
        if _PATH.match(path or "") else None
    if wanted is None:
        raise NotFound(_l("No such inferred value."))
    row = db.session.scalar(select(HandbookValueConfirmation).where(
        HandbookValueConfirmation.version_id == version.id,
        HandbookValueConfirmation.path == path))
    if row is None:
        row = HandbookValueConfirmation(version_id=version.id, path=path)
        db.session.add(row)
    row.value, row.confirmed_by_id, row.confirmed_at = wanted.value, actor.id, now
    db.session.flush()
    audit.record(actor=actor, action="handbook.confirm_value", object_type="handbook_version",
                 object_id=version.id, at=now, after={"path": path, "value": wanted.value})
    return next(v for v in inferred_values(version) if v.path == path)


def require_confirmed(version: HandbookVersion) -> None:
    """Refuse approval while an inferred value the version adds or changes is unconfirmed."""
    waiting = unconfirmed(version)
    if waiting:
        raise Conflict(_l("%(n)d inferred values are not confirmed yet; confirm each one "
                          "before approving.", n=len(waiting)),
                       code="unconfirmed_inferred_values", details={"paths": waiting})
