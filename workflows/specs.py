"""Compiled process versions, identified by content hash and shared through a bounded LRU cache.

A version is one or several BPMN files uploaded together; its identity is the SHA-256 over the
files sorted by name (each name and content length-prefixed, so no two different sets collide by
concatenation). Compiling checks everything (`documents`, `validation`, `parsing`) and keeps the
engine specs plus metadata that every instance needs (form fields), so thousands of instances
share one spec object and no per-call work repeats per version.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import StandardLoopTask

from .documents import DEFAULT_MAX_FILE_BYTES, BpmnDocument, parse_document
from .errors import DefinitionError, Problem, StateError
from .forms import FormField
from .guards import ScriptLimits
from .parsing import build_specs
from .validation import validate_documents

BpmnFiles = Mapping[str, bytes] | Iterable[tuple[str, bytes]]


@dataclass(frozen=True)
class CompileOptions:
    """Limits applied when a version is loaded."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_files: int = 50
    script_limits: ScriptLimits = field(default_factory=ScriptLimits)


@dataclass(frozen=True)
class ElementInfo:
    """A drawn element of a process (engine bookkeeping left out)."""

    process_id: str
    element_id: str
    name: str | None
    element_type: str
    lane: str | None
    documentation: str | None


@dataclass(frozen=True, eq=False)
class CompiledVersion:
    """The engine specs of one version and what instances need to know about them."""

    hash: str
    file_names: tuple[str, ...]
    specs: Mapping[str, BpmnProcessSpec]
    dependencies: Mapping[str, Mapping[str, BpmnProcessSpec]]
    forms: Mapping[tuple[str, str], tuple[FormField, ...]]

    def elements(self, process_id: str) -> tuple[ElementInfo, ...]:
        """The elements of `process_id` (not of the processes it calls), sorted by id."""
        spec = self.spec(process_id)
        found = {}
        for task_spec in spec.task_specs.values():
            element_id = getattr(task_spec, "bpmn_id", None)
            if element_id is None or element_id in found:
                continue  # bookkeeping, or the inner spec of a loop
            found[element_id] = ElementInfo(
                process_id, element_id, getattr(task_spec, "bpmn_name", None),
                task_spec.__class__.__name__, getattr(task_spec, "lane", None),
                getattr(task_spec, "documentation", None))
        return tuple(found[k] for k in sorted(found))

    @property
    def process_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.specs))

    def spec(self, process_id: str) -> BpmnProcessSpec:
        try:
            return self.specs[process_id]
        except KeyError:
            raise StateError(f"process {process_id!r} is not part of version "
                             f"{self.hash[:12]} (it has: {', '.join(self.process_ids)})") from None

    def form_fields(self, process_id: str, element_id: str) -> tuple[FormField, ...]:
        return self.forms.get((process_id, element_id), ())


def _as_pairs(files: BpmnFiles) -> list[tuple[str, bytes]]:
    items = list(files.items()) if isinstance(files, Mapping) else list(files)
    return sorted(items, key=lambda item: item[0])


def version_hash(files: BpmnFiles) -> str:
    """SHA-256 of the files sorted by name, each name and content length-prefixed."""
    digest = hashlib.sha256(b"workflows-version-1\0")
    for name, content in _as_pairs(files):
        encoded = name.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
        digest.update(len(content).to_bytes(8, "big"))
        digest.update(content)
    return digest.hexdigest()


def compile_version(files: BpmnFiles, options: CompileOptions | None = None) -> CompiledVersion:
    """Check and compile one version; raise DefinitionError listing every problem found."""
    options = options or CompileOptions()
    pairs = _as_pairs(files)
    if not pairs:
        raise DefinitionError([Problem("", None, None, "a version needs at least one BPMN file")])
    if len(pairs) > options.max_files:
        raise DefinitionError([Problem("", None, None, f"a version may have at most "
                                                       f"{options.max_files} files")])
    names = [name for name, _ in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError([Problem(n, None, None, "two files have this name") for n in
                               duplicates])
    problems: list[Problem] = []
    documents: list[BpmnDocument] = []
    for name, content in pairs:
        doc, doc_problems = parse_document(name, content, options.max_file_bytes)
        problems.extend(doc_problems)
        if doc is not None:
            documents.append(doc)
    if problems:
        raise DefinitionError(problems)
    checked = validate_documents(documents, options.script_limits)
    if checked.problems:
        raise DefinitionError(checked.problems)
    specs, dependencies, engine_problems = build_specs(documents)
    if engine_problems:
        raise DefinitionError(engine_problems)
    if not specs:
        raise DefinitionError([Problem(names[0], None, None, "the version has no executable "
                                                             "process")])
    _connect_loops(specs, dependencies)
    return CompiledVersion(
        hash=version_hash(pairs), file_names=tuple(names), specs=specs,
        dependencies=dependencies, forms=dict(checked.forms),
    )


def _connect_loops(specs: Mapping[str, BpmnProcessSpec],
                   dependencies: Mapping[str, Mapping[str, BpmnProcessSpec]]) -> None:
    """Wire standard loops now: the engine does it lazily on first run ("connect if not yet
    connected"), which races when several threads first run the same shared spec."""
    seen: set[int] = set()
    all_specs = list(specs.values()) + [s for deps in dependencies.values() for s in deps.values()]
    for process in all_specs:
        if id(process) in seen:
            continue
        seen.add(id(process))
        for task_spec in process.task_specs.values():
            if isinstance(task_spec, StandardLoopTask):
                child = process.task_specs[task_spec.task_spec]
                if not child.completed_event.is_connected(task_spec.merge_child):
                    child.completed_event.connect(task_spec.merge_child)


class SpecCache:
    """Bounded, thread-safe LRU of compiled versions keyed by content hash."""

    def __init__(self, max_versions: int = 64, options: CompileOptions | None = None):
        self.max_versions = max_versions
        self.options = options or CompileOptions()
        self._items: OrderedDict[str, CompiledVersion] = OrderedDict()
        self._lock = threading.Lock()
        self._compiling: dict[str, threading.Lock] = {}

    def get(self, content_hash: str) -> CompiledVersion | None:
        with self._lock:
            version = self._items.get(content_hash)
            if version is not None:
                self._items.move_to_end(content_hash)
            return version

    def load(self, files: BpmnFiles) -> CompiledVersion:
        """The compiled version for these files, compiling at most once per hash."""
        pairs = _as_pairs(files)
        key = version_hash(pairs)
        cached = self.get(key)
        if cached is not None:
            return cached
        with self._lock:
            gate = self._compiling.setdefault(key, threading.Lock())
        with gate:
            cached = self.get(key)
            if cached is not None:
                return cached
            try:
                version = compile_version(pairs, self.options)
            finally:
                with self._lock:
                    self._compiling.pop(key, None)
            with self._lock:
                self._items[key] = version
                while len(self._items) > self.max_versions:
                    self._items.popitem(last=False)
            return version

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
