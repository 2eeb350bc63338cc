"""The steps the application relies on, found by their `step` mark in each version's BPMN.

Acceptance times, task deadlines, the overdue list and the data-quality rules read particular
steps (accept, dispose, cancel, feedback). A designer may rename or redraw them freely: they
are found by `<camunda:property name="step" value="accept"/>`, never by element id, and a
scenario handbook version without them is refused (see `handbook_checks`).
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import select

from app.extensions import db
from app.models import HandbookVersion
from app.services.bpmn_index import VersionIndex, index_for

ASSESSMENT, ACCEPT, DISPOSE, CANCEL, FEEDBACK, VERIFY = (
    "assessment", "accept", "dispose", "cancel", "feedback", "verify")
# Every scenario handbook needs these, reachable from its own process.
REQUIRED = (ASSESSMENT, ACCEPT, DISPOSE, CANCEL, FEEDBACK)


def version_index(version: HandbookVersion) -> VersionIndex:
    """The version's index, built once per content hash."""
    return index_for(version.content_hash, lambda: version.files)


def marked_elements(*steps: str) -> dict[tuple[str, str], str]:
    """(process id, element id) -> step, over every stored version, for the given steps.

    Versions are read by content hash; the files of a version are loaded only the first time
    its hash is seen (indexes are cached), so this costs one small query per call.
    """
    rows = db.session.execute(select(HandbookVersion.id, HandbookVersion.content_hash)).all()
    found: dict[tuple[str, str], str] = {}
    for version_id, content_hash in rows:
        index = index_for(content_hash, partial(_files, version_id))
        for step in steps:
            for key in index.marked(step):
                found[key] = step
    return found


def _files(version_id: int) -> dict[str, str]:
    files = db.session.scalar(select(HandbookVersion.files).where(
        HandbookVersion.id == version_id))
    return dict(files or {})


def element_steps(content_hashes: set[str], *steps: str) -> dict[str, dict[str, str]]:
    """content hash -> {element id: step} for the versions with these hashes (an element id
    recorded in a case's history is found by the hash of the version that ran it)."""
    found: dict[str, dict[str, str]] = {}
    for content_hash in content_hashes:
        index = index_for(content_hash, partial(_files_by_hash, content_hash))
        found[content_hash] = {element_id: step for step in steps
                               for _, element_id in index.marked(step)}
    return found


def _files_by_hash(content_hash: str) -> dict[str, str]:
    files = db.session.scalar(select(HandbookVersion.files).where(
        HandbookVersion.content_hash == content_hash).limit(1))
    return dict(files or {})
