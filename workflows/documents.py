"""Hardened parsing of uploaded BPMN bytes into lxml trees (no DTD, no entities, no network)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from .errors import Problem

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class BpmnDocument:
    """One parsed file of a version."""

    name: str
    root: etree._Element
    lines: dict[str, int]

    def line_of(self, element_id: str | None) -> int | None:
        return self.lines.get(element_id) if element_id else None


def source_line(element: etree._Element) -> int | None:
    """The element's line in its file (lxml's stubs type this attribute loosely)."""
    line = getattr(element, "sourceline", None)
    return line if isinstance(line, int) else None


def _index_lines(root: etree._Element) -> dict[str, int]:
    lines: dict[str, int] = {}
    for element in root.iter(etree.Element):
        element_id = element.get("id")
        line = source_line(element)
        if element_id and line is not None:
            lines.setdefault(element_id, line)
    return lines


def _parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        dtd_validation=False, remove_pis=True,
    )


def parse_document(
    name: str, content: bytes, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> tuple[BpmnDocument | None, list[Problem]]:
    """Parse one BPMN file; return the document or the problems that stop it from loading."""
    if not isinstance(content, bytes):
        return None, [Problem(name, None, None, "the file content must be bytes")]
    if len(content) > max_bytes:
        return None, [Problem(name, None, None,
                              f"the file has {len(content)} bytes; the limit is {max_bytes} "
                              "bytes per file")]
    if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        return None, [_doctype_problem(name)]
    try:
        root = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        message = exc.msg if hasattr(exc, "msg") and exc.msg else str(exc)
        return None, [Problem(name, None, line, f"the file is not well-formed XML: {message}")]
    tree = root.getroottree()
    # Encodings such as UTF-16 hide the byte pattern above; the parsed tree still tells.
    docinfo: Any = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        return None, [_doctype_problem(name)]
    if root.tag != f"{{{BPMN_NS}}}definitions":
        return None, [Problem(name, None, source_line(root),
                              "the root element must be bpmn:definitions (BPMN 2.0 model "
                              f"namespace {BPMN_NS}), found {root.tag!r}")]
    return BpmnDocument(name, root, _index_lines(root)), []


def _doctype_problem(name: str) -> Problem:
    return Problem(name, None, 1, "the file contains a DOCTYPE or entity declaration, which is "
                                  "not allowed in BPMN uploads; save it again from the modeller")
