"""Hardened parsing of uploaded BPMN bytes into lxml trees (no DTD, no entities, no network).

Files may use any encoding lxml reads (UTF-8, UTF-16 with or without a byte-order mark,
GB18030, ...): `document_text` turns such a file into the text the application stores, always
declared UTF-8. XML comments inside an element's text (a script, a condition, a timer) are
dropped from the parsed tree with their surrounding text joined, so the engine and the checks
read the whole text the designer sees in the modeller, not only what comes before a comment.
"""

from __future__ import annotations

import codecs
import re
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
        return None, [Problem(name, None, None, "the file content must be bytes",
                              code="file_not_bytes")]
    if len(content) > max_bytes:
        return None, [_too_large(name, len(content), max_bytes)]
    if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        return None, [_doctype_problem(name)]
    try:
        root = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as exc:
        return None, [_syntax_problem(name, exc)]
    tree = root.getroottree()
    # Encodings such as UTF-16 hide the byte pattern above; the parsed tree still tells.
    docinfo: Any = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        return None, [_doctype_problem(name)]
    if root.tag != f"{{{BPMN_NS}}}definitions":
        return None, [Problem(name, None, source_line(root),
                              "the root element must be bpmn:definitions (BPMN 2.0 model "
                              f"namespace {BPMN_NS}), found {root.tag!r}",
                              code="not_bpmn", params={"tag": str(root.tag)})]
    bound = root.nsmap.get("camunda")
    if bound is not None and bound != CAMUNDA_NS:
        return None, [Problem(name, None, source_line(root), (
            f"the prefix camunda is bound to {bound!r}, not to {CAMUNDA_NS!r}; forms, "
            "properties and other Camunda settings would be lost: bind xmlns:camunda to "
            f"{CAMUNDA_NS} (or use another prefix for {bound!r})"),
            code="camunda_namespace", params={"uri": bound, "expected": CAMUNDA_NS})]
    _drop_comments(root)
    return BpmnDocument(name, root, _index_lines(root)), []


def _drop_comments(root: etree._Element) -> None:
    """Remove comments, joining the text around each one (lxml's `.text` stops at a comment,
    and the engine reads scripts, conditions and timers through `.text`)."""
    for comment in list(root.iter(etree.Comment)):
        parent = comment.getparent()
        if parent is None:
            continue
        tail = comment.tail or ""
        previous = comment.getprevious()
        if previous is None:
            parent.text = (parent.text or "") + tail
        else:
            previous.tail = (previous.tail or "") + tail
        parent.remove(comment)


_DECLARATION = re.compile(r"""^<\?xml[^>]*?\?>""")
_DECLARED_ENCODING = re.compile(r"""(\sencoding\s*=\s*)(["'])[^"']*\2""")


def document_text(name: str, content: bytes, max_bytes: int = DEFAULT_MAX_FILE_BYTES
                  ) -> tuple[str | None, list[Problem]]:
    """The text of an XML file in any encoding lxml can read, its declaration saying UTF-8.

    UTF-8 files come back exactly as they are (without a byte-order mark); other encodings are
    decoded with the codec the document declares or lxml detected. A file that is not
    well-formed or whose encoding is unknown gives a problem naming the file.
    """
    if len(content) > max_bytes:
        return None, [_too_large(name, len(content), max_bytes)]
    try:
        root = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as exc:
        return None, [_syntax_problem(name, exc)]
    docinfo: Any = root.getroottree().docinfo
    encoding = str(docinfo.encoding or "UTF-8")
    try:
        codec = codecs.lookup(encoding).name
        if codec.startswith("utf-16") or codec.startswith("utf-32"):
            # lxml found the byte order without a mark; Python's codec would guess it.
            codec = _with_byte_order(codec, content)
        text = content.decode(codec)
    except (LookupError, UnicodeDecodeError):
        return None, [Problem(name, None, None,
                              f"the file is encoded as {encoding}, which cannot be read here; "
                              "save it as UTF-8", code="file_encoding",
                              params={"encoding": encoding})]
    text = text.removeprefix("\ufeff")
    return (text if codec == "utf-8" else declare_utf8(text)), []


def declare_utf8(text: str) -> str:
    """XML held as text (e.g. from the browser) with its declaration, if any, saying UTF-8."""
    text = text.removeprefix("\ufeff")
    declaration = _DECLARATION.match(text)
    if declaration is not None:
        fixed = _DECLARED_ENCODING.sub(r"\1\2UTF-8\2", declaration.group(0))
        text = fixed + text[declaration.end():]
    return text


def text_bytes(text: str) -> bytes:
    """UTF-8 bytes of XML held as text, its declaration made to say UTF-8. Characters UTF-8
    cannot hold (lone surrogates) stay invalid bytes, which the parser then reports with their
    line instead of an exception here."""
    return declare_utf8(text).encode("utf-8", "surrogatepass")


def _with_byte_order(codec: str, content: bytes) -> str:
    if content[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or \
            content[:4] in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE):
        return codec  # the codec reads the mark
    width = 4 if codec.startswith("utf-32") else 2
    # '<' is the first character of a document: where its byte sits tells the byte order.
    little = content[:1] == b"<"
    return f"utf-{width * 8}-{'le' if little else 'be'}"


def _syntax_problem(name: str, exc: etree.XMLSyntaxError) -> Problem:
    line = exc.lineno if exc.lineno else None
    message = exc.msg if hasattr(exc, "msg") and exc.msg else str(exc)
    return Problem(name, None, line, f"the file is not well-formed XML: {message}",
                   code="not_well_formed", params={"detail": message})


def _too_large(name: str, size: int, limit: int) -> Problem:
    return Problem(name, None, None, f"the file has {size} bytes; the limit is {limit} bytes "
                                     "per file", code="file_too_large",
                   params={"size": size, "limit": limit})


def _doctype_problem(name: str) -> Problem:
    return Problem(name, None, 1, "the file contains a DOCTYPE or entity declaration, which is "
                                  "not allowed in BPMN uploads; save it again from the modeller",
                   code="doctype")
