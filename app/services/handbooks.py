"""Handbook versions (Art 5, 7): deploy from disk as drafts, review, publish, retire.

A version bundles everything one handbook runs on: its own BPMN process, the shared BPMN
sub-processes it calls and its handbook data. A change in any of them is a new version;
running cases keep the version they started on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.i18n import _l
from app.models import HandbookVersion, PlatformNode, User, VersionStatus
from app.services import audit, notify
from app.services.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from app.services.handbook_diff import content_hash, diff_bundles
from app.services.permissions import require
from workflows import CompiledVersion, DefinitionError, Problem, compile_version
from workflows.documents import text_bytes
from workflows.specs import pin_problems

ROOT = Path(__file__).resolve().parents[2]
BPMN_DIR = ROOT / "bpmn"
SCENARIO_DATA_DIR = ROOT / "handbooks" / "scenarios"
SHARED_BPMN = "shared"

# Handbooks that are not scenarios: key -> (owner node code, entry process id, BPMN file).
STANDALONE = {
    "warning_publication": ("industry.meteorology", "warning_publication",
                            "warning_publication.bpmn"),
    # Technical operations: a silent point or a stopped source (Art 8, 13, 15).
    "feed_outage": ("industry.emergency", "feed_outage", "feed_outage.bpmn"),
}


class DeployRefused(DomainError):
    """The files on disk do not form valid handbooks; nothing was deployed."""

    code = "deploy_refused"
    status = 422


@dataclass(frozen=True)
class Bundle:
    key: str
    node_code: str
    process_id: str
    files: dict[str, str]

    @property
    def hash(self) -> str:
        return content_hash(self.files)


class _Unreadable(Exception):
    def __init__(self, problem: str):
        self.problem = problem


def _read(path: Path, root: Path) -> tuple[str, str]:
    """A file as the text a version stores; BPMN may come in any encoding the XML parser
    reads (it is stored as UTF-8)."""
    from workflows.documents import document_text

    name = str(path.relative_to(root))
    content = path.read_bytes()
    if path.suffix == ".bpmn":
        text, problems = document_text(name, content)
        if text is None:
            raise _Unreadable(str(problems[0]))
        return name, text
    try:
        return name, content.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable(f"{name}: the file is not UTF-8 text; save it as UTF-8") from None


def collect_bundles(root: Path = ROOT) -> list[Bundle]:
    """Read and check every handbook on disk; raise DeployRefused listing all problems."""
    from app.services.errors import SeedError
    from app.services.handbook_data import read_handbooks

    bpmn_dir = root / "bpmn"
    problems: list[str] = []
    unreadable: list[str] = []
    texts: dict[Path, tuple[str, str]] = {}

    def read(path: Path) -> tuple[str, str] | None:
        if path not in texts:
            try:
                texts[path] = _read(path, root)
            except _Unreadable as exc:
                unreadable.append(exc.problem)
                return None
        return texts[path]

    shared = dict(filter(None, map(read, sorted((bpmn_dir / SHARED_BPMN).glob("*.bpmn")))))
    try:
        handbooks = read_handbooks(root / "handbooks" / "scenarios")
    except SeedError as exc:
        raise DeployRefused(exc.message, details={"problems": [str(exc.message)]}) from None
    bundles: list[Bundle] = []
    for key, handbook in sorted(handbooks.items()):
        process_file = bpmn_dir / f"{handbook.process_id}.bpmn"
        if not process_file.exists():
            problems.append(f"{key}.json: process_id: no BPMN file {process_file.name} in bpmn/")
            continue
        own = [read(process_file), read(root / "handbooks" / "scenarios" / f"{key}.json")]
        if None in own:
            continue
        files = dict(shared)
        files.update(item for item in own if item is not None)
        bundles.append(Bundle(key, f"scenario.{key}", handbook.process_id, files))
    for key, (node_code, process_id, file_name) in STANDALONE.items():
        path = bpmn_dir / file_name
        if not path.exists():
            problems.append(f"bpmn/{file_name}: missing")
            continue
        standalone = read(path)
        if standalone is not None:
            bundles.append(Bundle(key, node_code, process_id, dict([standalone])))
    if unreadable:
        # Checking the rest without these files would only add follow-up problems.
        raise DeployRefused("; ".join(unreadable[:10]), details={"problems": unreadable})
    for bundle in bundles:
        problems += [f"{bundle.key}: {p}" for p in check_files(bundle)]
    if problems:
        unique = list(dict.fromkeys(problems))
        raise DeployRefused("; ".join(unique[:10]), details={"problems": unique})
    return bundles


def check_bundle(bundle: Bundle, version: Any) -> list[Problem]:
    """The handbook's rules between its data and its BPMN (steps, lanes, forms)."""
    from app.services.handbook_checks import check_bundle as _check

    return _check(bundle, version)


def check_files(bundle: Bundle, *, compiled: CompiledVersion | None = None) -> list[Problem]:
    """Everything that refuses `bundle`: the engine's compile, then the handbook's rules.
    Problems come pinned on the drawn elements of the files they name."""
    bpmn = {n: text_bytes(t) for n, t in bundle.files.items() if n.endswith(".bpmn")}
    if compiled is None:
        try:
            compiled = compile_version(bpmn)
        except DefinitionError as exc:
            # A missing step is worth naming even when the engine refuses the files too.
            return exc.problems + pin_problems(_missing_steps(bundle), list(bpmn.items()))
    problems: list[Problem] = []
    if bundle.process_id not in compiled.process_ids:
        problems.append(Problem(
            "", None, None, f"process {bundle.process_id} of handbook {bundle.key} is not "
            "defined in its BPMN files", code="handbook_process_missing",
            params={"process_id": bundle.process_id, "handbook": bundle.key}))
    problems += check_bundle(bundle, compiled)
    return pin_problems(problems, list(bpmn.items()))


def _missing_steps(bundle: Bundle) -> list[Problem]:
    from app.services.bpmn_index import build_index
    from app.services.handbook_checks import file_of_processes, missing_steps

    if f"handbooks/scenarios/{bundle.key}.json" not in bundle.files:
        return []
    try:
        return missing_steps(build_index(bundle.files), bundle.process_id,
                             file_of_processes(bundle.files).get(bundle.process_id, ""))
    except (SyntaxError, ValueError):
        return []  # files lxml cannot read: the compile's problems say so already


def check_draft(version: HandbookVersion, files: dict[str, str], *,
                migration_plan: Mapping[str, str] | None = None) -> list[Problem]:
    """What saving `files` as a draft of `version`'s handbook would refuse: the engine's
    compile, the handbook's rules, and steps that running cases wait in which the new files
    no longer have (unless `migration_plan`, old element id -> new element id, moves them)."""
    bundle = Bundle(version.handbook_key, version.node.code, version.process_id, files)
    problems = check_files(bundle)
    try:
        file_of = _file_of(files)
        waiting_steps = removed_waiting_steps(version.handbook_key, files)
    except (SyntaxError, ValueError):
        return problems  # files lxml cannot read: the compile's problems say so already
    plan = dict(migration_plan or {})
    for waiting in waiting_steps:
        if waiting.element_id in plan:
            continue
        problems.append(Problem(
            file_of.get(waiting.process_id, ""), None, None,
            f"{waiting.cases} running case(s) of version {waiting.version_number} wait in step "
            f"{waiting.name or waiting.element_id} ({waiting.element_id}), which these files no "
            "longer have; keep the step, or plan where those cases move",
            code="waiting_step_removed",
            params={"step": waiting.name or waiting.element_id, "element": waiting.element_id,
                    "cases": waiting.cases, "version": waiting.version_number},
            process=waiting.process_id))
    return problems


def _file_of(files: Mapping[str, str]) -> dict[str, str]:
    from app.services.handbook_checks import file_of_processes

    return file_of_processes(files)


@dataclass(frozen=True)
class WaitingStep:
    """A step of an older version that running cases wait in."""

    version_number: int
    process_id: str
    element_id: str
    name: str
    cases: int


def removed_waiting_steps(old: str | HandbookVersion, new_files: Mapping[str, str]
                          ) -> list[WaitingStep]:
    """The steps that open cases wait in (their ready tasks) and that `new_files` no longer
    define (by process and element id), most waited-in first: the cases of every version of a
    handbook (`old` its key) or of one version (`old` that version). Test runs are left out:
    they never move to another version."""
    from app.models import Case, CaseTask
    from app.services.bpmn_index import build_index

    which = (HandbookVersion.id == old.id if isinstance(old, HandbookVersion)
             else HandbookVersion.handbook_key == old)
    rows = db.session.execute(
        select(HandbookVersion.number, CaseTask.process_id, CaseTask.element_id,
               func.max(CaseTask.name), func.count(func.distinct(CaseTask.case_id)))
        .join(Case, Case.id == CaseTask.case_id)
        .join(HandbookVersion, HandbookVersion.id == Case.handbook_version_id)
        .where(which, CaseTask.status == "ready",
               Case.is_test.is_(False))
        .group_by(HandbookVersion.number, CaseTask.process_id, CaseTask.element_id)).all()
    if not rows:
        return []
    kept = build_index(dict(new_files)).elements
    found = [WaitingStep(number, pid, eid, name or "", int(count))
             for number, pid, eid, name, count in rows if (pid, eid) not in kept]
    return sorted(found, key=lambda w: (-w.cases, w.version_number, w.element_id))


def export(out: Path, key: str | None = None) -> list[Path]:
    """Write the published versions (of `key`, or all) back to files in the layout they are
    seeded from (`bpmn/`, `bpmn/shared/`, `handbooks/scenarios/`); the written paths."""
    query = select(HandbookVersion).where(HandbookVersion.status == VersionStatus.PUBLISHED)
    if key is not None:
        query = query.where(HandbookVersion.handbook_key == key)
    versions = list(db.session.scalars(query.order_by(HandbookVersion.handbook_key)))
    if key is not None and not versions:
        raise NotFound(_l("Handbook %(key)s has no published version.", key=key))
    written: dict[Path, str] = {}
    for version in versions:
        for name, text in sorted(version.files.items()):
            target = (out / name).resolve()
            if out.resolve() not in target.parents:
                raise ValidationFailed(_l("A file name leaves the export folder: %(name)s",
                                          name=name))
            if written.get(target, text) != text:
                # Shared files differ between published versions: the later handbook's copy
                # would silently win.
                raise Conflict(_l("%(name)s differs between published handbooks; export them "
                                  "one at a time with --key.", name=name))
            written[target] = text
    for target, text in written.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return sorted(written)


@dataclass(frozen=True)
class DeployResult:
    created: list[HandbookVersion]
    unchanged: list[str]


def deploy(*, author: User | None, now: datetime, note: str = "", root: Path = ROOT
           ) -> DeployResult:
    """Create a draft version for every handbook whose content changed; all or nothing."""
    bundles = collect_bundles(root)
    nodes = {n.code: n for n in db.session.scalars(select(PlatformNode).where(
        PlatformNode.code.in_([b.node_code for b in bundles])))}
    created: list[HandbookVersion] = []
    unchanged: list[str] = []
    waiting = [f"{bundle.key}: {step.cases} running case(s) of version {step.version_number} "
               f"wait in step {step.name or step.element_id} ({step.element_id}), which the "
               "files no longer have; keep the step, or migrate those cases first"
               for bundle in bundles for step in removed_waiting_steps(bundle.key, bundle.files)]
    if waiting:
        raise DeployRefused("; ".join(waiting[:10]), details={"problems": waiting})
    for bundle in bundles:
        if bundle.node_code not in nodes:
            raise DeployRefused(f"{bundle.key}: no platform node {bundle.node_code}; "
                                f"load the platform tree first")
        latest = latest_version(bundle.key)
        if latest is not None and latest.content_hash == bundle.hash:
            unchanged.append(bundle.key)
            continue
        number = (latest.number + 1) if latest else 1
        version = HandbookVersion(
            handbook_key=bundle.key, node=nodes[bundle.node_code], number=number,
            status=VersionStatus.DRAFT, content_hash=bundle.hash, process_id=bundle.process_id,
            files=bundle.files, change_note=note,
            diff_summary=diff_bundles(latest.files if latest else None, bundle.files),
            author_id=author.id if author else None,
            author_name=author.username if author else "deploy", created_at=now)
        db.session.add(version)
        db.session.flush()
        audit.record(actor=author, actor_name="deploy", action="handbook.draft",
                     object_type="handbook_version", object_id=version.id,
                     after={"handbook": bundle.key, "number": number, "hash": bundle.hash},
                     at=now)
        created.append(version)
    return DeployResult(created, unchanged)


def latest_version(key: str) -> HandbookVersion | None:
    return db.session.scalar(select(HandbookVersion).where(HandbookVersion.handbook_key == key)
                             .order_by(HandbookVersion.number.desc()).limit(1))


def published_version(key: str) -> HandbookVersion | None:
    return db.session.scalar(select(HandbookVersion).where(
        HandbookVersion.handbook_key == key, HandbookVersion.status == VersionStatus.PUBLISHED))


def get_version(version_id: int) -> HandbookVersion:
    version = db.session.get(HandbookVersion, version_id)
    if version is None:
        raise NotFound(_l("No such handbook version."))
    return version


def versions_of(key: str) -> list[HandbookVersion]:
    return list(db.session.scalars(select(HandbookVersion).where(
        HandbookVersion.handbook_key == key).order_by(HandbookVersion.number.desc())))


@dataclass(frozen=True)
class HandbookRow:
    key: str
    node: PlatformNode
    versions: int
    published: HandbookVersion | None
    pending: int


def overview() -> list[HandbookRow]:
    """One row per handbook: how many versions, which is published, how many await review."""
    counts = dict(db.session.execute(select(HandbookVersion.handbook_key, func.count())
                                     .group_by(HandbookVersion.handbook_key)).tuples().all())
    pending = dict(db.session.execute(
        select(HandbookVersion.handbook_key, func.count())
        .where(HandbookVersion.status == VersionStatus.IN_REVIEW)
        .group_by(HandbookVersion.handbook_key)).tuples().all())
    published = {v.handbook_key: v for v in db.session.scalars(select(HandbookVersion).where(
        HandbookVersion.status == VersionStatus.PUBLISHED))}
    latest = {v.handbook_key: v for v in db.session.scalars(
        select(HandbookVersion).order_by(HandbookVersion.number))}
    return [HandbookRow(key, latest[key].node, int(counts[key]), published.get(key),
                        int(pending.get(key, 0))) for key in sorted(latest)]


def _snapshot(version: HandbookVersion) -> dict[str, Any]:
    return {"handbook": version.handbook_key, "number": version.number,
            "status": version.status.value, "comment": version.review_comment}


def submit_for_review(actor: User, version_id: int, *, note: str, now: datetime
                      ) -> HandbookVersion:
    version = get_version(version_id)
    require(actor, "handbook.draft", version.node)
    if version.status != VersionStatus.DRAFT:
        raise Conflict(_l("Only a draft can be sent for review."))
    if version.updated_by_id is not None:
        # Deployed files passed the checks at deploy; a draft saved in the browser may not.
        from app.services import problem_text

        problems = [p for p in check_draft(version, version.files) if p.severity == "error"]
        if problems:
            raise ValidationFailed(
                _l("The draft has %(n)d problem(s); fix them in the designer before sending it "
                   "for review. First: %(first)s", n=len(problems),
                   first=problem_text.text(problems[0])),
                code="draft_has_problems",
                details={"problems": [problem_text.as_dict(p) for p in problems]})
    before = _snapshot(version)
    version.status = VersionStatus.IN_REVIEW
    version.submitted_at = now
    if note.strip():
        version.change_note = note.strip()
    if version.author_id is None:
        # A deployed draft is owned by whoever takes it into review.
        version.author_id, version.author_name = actor.id, actor.username
    db.session.flush()
    notify.review_waiting(version, now=now)
    audit.record(actor=actor, action="handbook.submit", object_type="handbook_version",
                 object_id=version.id, before=before, after=_snapshot(version), at=now)
    return version


def _review(actor: User, version_id: int) -> HandbookVersion:
    version = get_version(version_id)
    require(actor, "handbook.review", version.node)
    if version.status != VersionStatus.IN_REVIEW:
        raise Conflict(_l("This version is not awaiting review."))
    if version.author_id == actor.id:
        raise Forbidden(_l("You cannot review a version you wrote."), code="own_version")
    return version


def approve(actor: User, version_id: int, *, comment: str, now: datetime) -> HandbookVersion:
    """Publish: the previously published version retires; new cases start on this one."""
    version = _review(actor, version_id)
    if not comment.strip():
        raise ValidationFailed(_l("Give a review comment."),
                               details={"comment": [str(_l("Required."))]})
    from app.services.handbook_data_form import require_confirmed

    require_confirmed(version)
    current = published_version(version.handbook_key)
    if current is not None:
        current.status = VersionStatus.RETIRED
        current.retired_at = now
        db.session.flush()  # the unique index allows one published row per handbook
    before = _snapshot(version)
    version.status = VersionStatus.PUBLISHED
    version.reviewer_id = actor.id
    version.reviewed_at = now
    version.review_comment = comment.strip()
    version.published_at = now
    db.session.flush()
    audit.record(actor=actor, action="handbook.publish", object_type="handbook_version",
                 object_id=version.id, before=before,
                 after={**_snapshot(version),
                        "retired": current.number if current is not None else None}, at=now)
    return version


def reject(actor: User, version_id: int, *, reason: str, now: datetime) -> HandbookVersion:
    version = _review(actor, version_id)
    if not reason.strip():
        raise ValidationFailed(_l("Say why the version is rejected."),
                               details={"comment": [str(_l("Required."))]})
    before = _snapshot(version)
    version.status = VersionStatus.DRAFT
    version.reviewer_id = actor.id
    version.reviewed_at = now
    version.review_comment = reason.strip()
    db.session.flush()
    audit.record(actor=actor, action="handbook.reject", object_type="handbook_version",
                 object_id=version.id, before=before, after=_snapshot(version), at=now)
    return version
