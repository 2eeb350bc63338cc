"""Facts the application reads from a version's BPMN beyond what the engine keeps:
which role lane each element sits in (by lane id, so renaming a lane changes nothing) and
each element's `camunda:properties` (who to notify, what kind of notice, due variables, and
the `step` mark by which the application finds the steps it relies on: accept, dispose, ...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
LANE_PREFIX = "Lane_"
STEP = "step"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass(frozen=True)
class ElementFacts:
    process_id: str
    element_id: str
    name: str
    kind: str
    role: str | None
    properties: dict[str, str] = field(default_factory=dict)
    called: str | None = None  # a call activity's called process

    @property
    def step(self) -> str | None:
        return self.properties.get(STEP) or None


@dataclass(frozen=True)
class VersionIndex:
    elements: dict[tuple[str, str], ElementFacts]
    steps: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def step_of(self, process_id: str, element_id: str) -> str | None:
        """The step mark of an element (`accept`, `dispose`, ...), None if unmarked."""
        facts = self.get(process_id, element_id)
        return facts.step if facts else None

    def marked(self, step: str) -> tuple[tuple[str, str], ...]:
        """(process id, element id) of every element marked as `step`."""
        return self.steps.get(step, ())

    def get(self, process_id: str, element_id: str) -> ElementFacts | None:
        return self.elements.get((process_id, element_id))

    def role_of(self, process_id: str, element_id: str) -> str | None:
        facts = self.get(process_id, element_id)
        return facts.role if facts else None

    def properties(self, process_id: str, element_id: str) -> dict[str, str]:
        facts = self.get(process_id, element_id)
        return facts.properties if facts else {}


def _properties(element: etree._Element) -> dict[str, str]:
    found: dict[str, str] = {}
    ext = element.find(f"{{{BPMN}}}extensionElements")
    if ext is None:
        return found
    for prop in ext.iterfind(f"{{{CAMUNDA}}}properties/{{{CAMUNDA}}}property"):
        if prop.get("name"):
            found[prop.get("name", "")] = prop.get("value", "")
    return found


def build_index(files: dict[str, str]) -> VersionIndex:
    elements: dict[tuple[str, str], ElementFacts] = {}
    for name in sorted(files):
        if not name.endswith(".bpmn"):
            continue
        root = etree.fromstring(files[name].encode("utf-8"), _PARSER)
        for process in root.iter(f"{{{BPMN}}}process"):
            pid = process.get("id", "")
            lanes: dict[str, str] = {}
            for lane in process.iter(f"{{{BPMN}}}lane"):
                lane_id = lane.get("id", "")
                role = lane_id[len(LANE_PREFIX):] if lane_id.startswith(LANE_PREFIX) else None
                for ref in lane.iterfind(f"{{{BPMN}}}flowNodeRef"):
                    if role and ref.text:
                        lanes[ref.text.strip()] = role
            for element in process.iter():
                if not isinstance(element.tag, str) or not element.tag.startswith(f"{{{BPMN}}}"):
                    continue
                element_id = element.get("id")
                if not element_id or element is process:
                    continue
                facts = ElementFacts(
                    pid, element_id, element.get("name") or "", etree.QName(element).localname,
                    lanes.get(element_id), _properties(element),
                    element.get("calledElement"))
                elements[(pid, element_id)] = facts
                # The engine reports tasks inside a sub-process under the sub-process's id.
                for parent in element.iterancestors(f"{{{BPMN}}}subProcess"):
                    elements[(parent.get("id", ""), element_id)] = facts
    steps: dict[str, list[tuple[str, str]]] = {}
    for key, facts in elements.items():
        if facts.step:
            steps.setdefault(facts.step, []).append(key)
    return VersionIndex(elements, {k: tuple(sorted(v)) for k, v in steps.items()})


_CACHE: dict[str, VersionIndex] = {}
_CACHE_LIMIT = 512


def index_for(content_hash: str, files: Callable[[], dict[str, str]]) -> VersionIndex:
    """The index of a stored version, built once per content hash (versions never change);
    `files` is called only when the index is not cached yet."""
    found = _CACHE.get(content_hash)
    if found is None:
        found = build_index(files())
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[content_hash] = found
    return found
