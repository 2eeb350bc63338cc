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
from dataclasses import asdict, dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import AdHocSubprocessSpec, BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import StandardLoopTask

from . import sandbox
from .documents import (
    BPMN_NS,
    DEFAULT_MAX_FILE_BYTES,
    BpmnDocument,
    parse_document,
    source_line,
)
from .errors import DefinitionError, Problem, StateError
from .forms import FormField
from .guards import ScriptLimits
from .parsing import build_specs
from .pinning import pin
from .structure import check_structure
from .validation import validate_documents

BpmnFiles = Mapping[str, bytes] | Iterable[tuple[str, bytes]]


@dataclass(frozen=True)
class CompileOptions:
    """Limits applied when a version is loaded.

    Size: `max_files` files of at most `max_file_bytes` each and `max_version_bytes` together.
    Shape, checked on the XML trees before the engine builds anything (see `structure`):
    `max_processes` per version, `max_elements` XML elements per process, sub-processes nested
    at most `max_nesting` deep, at most `max_chain` steps in one sequence counting nested
    sub-processes (the engine's parser recurses along it), call activities at most
    `max_call_depth` deep and `max_call_graph` process-to-callee pairs in all (counting
    indirect calls), no cycles, and `loopMaximum` at most `max_loop_maximum`. At most
    `max_problems` problems are reported. Scripts are checked with `script_limits`.

    Unless `isolate` is off, the whole check first runs in a worker process (`sandbox`) with
    `max_seconds` of time and `max_memory_mb` of address space; only a version that passed
    there is compiled in the calling process.
    """

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_files: int = 50
    max_version_bytes: int = 8 * 1024 * 1024
    max_processes: int = 40
    max_elements: int = 5_000
    max_nesting: int = 5
    max_chain: int = 250
    max_call_depth: int = 5
    max_call_graph: int = 200
    max_loop_maximum: int = 200
    max_problems: int = 200
    script_limits: ScriptLimits = field(default_factory=ScriptLimits)
    isolate: bool = True
    max_seconds: float = 20.0
    max_memory_mb: int = 1024


def options_from_dict(values: Mapping[str, Any], **changes: Any) -> CompileOptions:
    """CompileOptions from `dataclasses.asdict` output (how they travel to a worker)."""
    fields = dict(values)
    fields["script_limits"] = ScriptLimits(**fields["script_limits"])
    fields.update(changes)
    return CompileOptions(**fields)


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
    try:
        _check_files(pairs, options)
        if options.isolate:
            _check_in_worker(pairs, options)
        return _compile(pairs, options)
    except DefinitionError as exc:
        raise DefinitionError(pin_problems(exc.problems, pairs, options)) from None


def pin_problems(problems: list[Problem], pairs: Iterable[tuple[str, bytes]],
                 options: CompileOptions | None = None) -> list[Problem]:
    """`problems` pinned on the drawn elements of the files they name (see `pinning`)."""
    options = options or CompileOptions()
    wanted = {p.file for p in problems if p.element is None and p.element_id}
    roots = {}
    for name, content in pairs:
        if name in wanted and isinstance(content, bytes):
            doc, _ = parse_document(name, content, options.max_file_bytes)
            if doc is not None:
                roots[name] = doc.root
    return pin(problems, roots)


def _check_files(pairs: list[tuple[str, bytes]], options: CompileOptions) -> None:
    if not pairs:
        raise DefinitionError([Problem("", None, None, "a version needs at least one BPMN file",
                                       code="no_files")])
    if len(pairs) > options.max_files:
        raise DefinitionError([Problem("", None, None, f"a version may have at most "
                                                       f"{options.max_files} files",
                                       code="too_many_files",
                                       params={"limit": options.max_files})])
    names = [name for name, _ in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError([Problem(n, None, None, "two files have this name",
                                       code="file_name_twice") for n in duplicates])
    not_bytes = [name for name, content in pairs if not isinstance(content, bytes)]
    if not_bytes:
        raise DefinitionError([Problem(n, None, None, "the file content must be bytes",
                                       code="file_not_bytes") for n in not_bytes])
    total = sum(len(content) for _, content in pairs)
    if total > options.max_version_bytes:
        raise DefinitionError([Problem("", None, None, (
            f"the files have {total} bytes together; the limit is {options.max_version_bytes}"),
            code="version_too_large", params={"size": total, "limit": options.max_version_bytes})])


def _check_in_worker(pairs: list[tuple[str, bytes]], options: CompileOptions) -> None:
    """Run the whole check and compile in a bounded worker; DefinitionError if it fails."""
    pool = sandbox.pool(options.max_memory_mb, options.script_limits.max_workers)
    header = {"op": "compile", "options": asdict(options), "names": [n for n, _ in pairs],
              "seconds": options.max_seconds}
    try:
        reply = pool.call(header, [content for _, content in pairs],
                          timeout=options.max_seconds)
    except sandbox.WorkerFailure as exc:
        reason = (f"took longer than {options.max_seconds:g} s" if exc.reason != "died"
                  else f"stopped its worker process (exit code {exc.exitcode})")
        raise DefinitionError([Problem("", None, None, f"checking the version {reason}; it is "
                                                       "too large or too complex",
                                       code="check_stopped", params={"detail": reason})]
                              ) from None
    if reply.get("ok"):
        return
    if "problems" in reply:
        raise DefinitionError([Problem(**p) for p in reply["problems"]])
    error = reply.get("error") or {}
    if error.get("kind") == "memory":
        message = f"checking the version needed more than {options.max_memory_mb} MB of memory"
    else:
        message = f"checking the version failed: {error.get('type')}: {error.get('message')}"
    raise DefinitionError([Problem("", None, None, message, code="check_failed",
                                   params={"detail": message})])


def _compile(pairs: list[tuple[str, bytes]], options: CompileOptions) -> CompiledVersion:
    names = [name for name, _ in pairs]
    problems: list[Problem] = []
    documents: list[BpmnDocument] = []
    for name, content in pairs:
        doc, doc_problems = parse_document(name, content, options.max_file_bytes)
        problems.extend(doc_problems)
        if doc is not None:
            documents.append(doc)
    if problems:
        raise DefinitionError(problems[:options.max_problems])
    blocking, shape = check_structure(documents, options)
    if blocking:
        raise DefinitionError(blocking)
    checked = validate_documents(documents, options.script_limits)
    if shape or checked.problems:
        raise DefinitionError((shape + checked.problems)[:options.max_problems])
    specs, dependencies, engine_problems = build_specs(documents)
    if engine_problems:
        raise DefinitionError(engine_problems)
    if not specs:
        raise DefinitionError(_no_executable_process(documents, names))
    _wire_now(specs, dependencies)
    return CompiledVersion(
        hash=version_hash(pairs), file_names=tuple(names), specs=specs,
        dependencies=dependencies, forms=dict(checked.forms),
    )


def _no_executable_process(documents: list[BpmnDocument], names: list[str]) -> list[Problem]:
    """One problem per process, each saying that its isExecutable flag is off."""
    found = [(doc, process) for doc in documents
             for process in doc.root.iter(f"{{{BPMN_NS}}}process")]
    if not found:
        return [Problem(names[0], None, None, "the version has no executable process: the "
                                              "files define no process at all",
                        code="no_process")]
    listed = ", ".join(sorted(p.get("id") or "?" for _, p in found))
    return [Problem(doc.name, process.get("id"), source_line(process), (
        f"the version has no executable process (processes: {listed}); process "
        f"{process.get('id')!r} has isExecutable=\"{process.get('isExecutable', 'false')}\": "
        "tick 'Executable' in the modeller (isExecutable=\"true\") for the process that "
        "should run"), code="no_executable_process",
        params={"process_id": process.get("id") or "", "processes": listed,
                "flag": process.get("isExecutable", "false")}) for doc, process in found]


def _wire_now(specs: Mapping[str, BpmnProcessSpec],
              dependencies: Mapping[str, Mapping[str, BpmnProcessSpec]]) -> None:
    """Make every connection the engine would otherwise add to a spec while running.

    Specs are shared by every instance of a version, in every thread, and must never change
    after compilation. The engine was written for a spec per workflow and wires some things
    lazily, the first time an instance reaches them:

    - a standard loop connects its inner task to its merge ("connect if not yet connected");
      two threads first running the same loop race;
    - an event sub-process started by a message or signal is connected *from the start task*
      (`BpmnStartTask.trigger_wf`), and so is an ad-hoc sub-process path (`add_path`). On a
      shared spec this made every instance started afterwards run the event sub-process at
      once, and states saved that way failed after a restart against a freshly compiled spec
      ("No input task connected").

    For triggered specs only the back links are made here (start listed among their inputs,
    the end among their outputs), which is all the engine checks before it would connect the
    start task; the start task's outputs stay as drawn, so new instances start as drawn.
    """
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
        triggered = [process.task_specs[name] for name in process.start.trigger_specs]
        if isinstance(process, AdHocSubprocessSpec):
            triggered += list(process.conditional_paths)
        for task_spec in triggered:
            if process.start not in task_spec.inputs:
                task_spec._connect_notify(process.start)
            if isinstance(process, AdHocSubprocessSpec):
                continue  # ad-hoc paths keep their own outputs
            if process.end not in task_spec.outputs:
                task_spec.connect(process.end)


def wiring_fingerprint(version: CompiledVersion) -> str:
    """A digest of how every spec of `version` is connected (inputs, outputs, triggers).

    Equal before and after any number of instances ran: used by tests to prove that running
    never changes a shared spec.
    """
    digest = hashlib.sha256()
    processes = list(version.specs.items()) + [
        (f"{pid}/{name}", dep) for pid, deps in version.dependencies.items()
        for name, dep in deps.items()]
    for key, process in sorted(processes, key=lambda item: item[0]):
        digest.update(key.encode())
        for name in sorted(process.task_specs):
            task_spec = process.task_specs[name]
            digest.update(repr((name, list(task_spec._inputs), list(task_spec._outputs),
                                list(getattr(task_spec, "trigger_specs", ()) or ()))).encode())
    return digest.hexdigest()


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
