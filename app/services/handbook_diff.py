"""What changed between two handbook bundles: files, BPMN elements and handbook data keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def content_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0" + files[name].encode("utf-8") + b"\0")
    return digest.hexdigest()


def _elements(xml: str) -> dict[str, tuple[str, str, str]]:
    """Semantic elements by id: (kind, name, fingerprint of everything inside)."""
    root = etree.fromstring(xml.encode("utf-8"), _PARSER)
    found: dict[str, tuple[str, str, str]] = {}
    for process in root.iter(f"{{{BPMN_NS}}}process"):
        for element in process.iter():
            if not isinstance(element.tag, str) or not element.tag.startswith(f"{{{BPMN_NS}}}"):
                continue
            element_id = element.get("id")
            if not element_id or element is process:
                continue
            kind = etree.QName(element).localname
            fingerprint = hashlib.sha256(etree.tostring(element, method="c14n")).hexdigest()
            found[element_id] = (kind, element.get("name") or "", fingerprint)
    return found


def _json_keys(text: str) -> dict[str, str]:
    data = json.loads(text)
    if not isinstance(data, dict):
        return {}
    return {key: json.dumps(value, sort_keys=True, ensure_ascii=False)
            for key, value in data.items()}


def diff_bundles(old: dict[str, str] | None, new: dict[str, str]) -> dict[str, Any]:
    """A summary a reviewer can read: which files, elements and data sections changed."""
    old = old or {}
    summary: dict[str, Any] = {
        "first_version": not old,
        "files_added": sorted(set(new) - set(old)),
        "files_removed": sorted(set(old) - set(new)),
        "files_changed": sorted(n for n in set(old) & set(new) if old[n] != new[n]),
        "elements_added": [], "elements_removed": [], "elements_changed": [],
        "data_changed": [],
    }
    for name in summary["files_changed"] + summary["files_added"]:
        if name.endswith(".bpmn"):
            before = _elements(old[name]) if name in old else {}
            after = _elements(new[name])
            summary["elements_added"] += [
                {"file": name, "id": i, "kind": after[i][0], "name": after[i][1]}
                for i in sorted(set(after) - set(before))]
            summary["elements_removed"] += [
                {"file": name, "id": i, "kind": before[i][0], "name": before[i][1]}
                for i in sorted(set(before) - set(after))]
            summary["elements_changed"] += [
                {"file": name, "id": i, "kind": after[i][0], "name": after[i][1]}
                for i in sorted(set(before) & set(after)) if before[i][2] != after[i][2]]
        elif name.endswith(".json") and name in old:
            before_keys, after_keys = _json_keys(old[name]), _json_keys(new[name])
            summary["data_changed"] += [
                {"file": name, "section": k}
                for k in sorted(set(before_keys) | set(after_keys))
                if before_keys.get(k) != after_keys.get(k)]
    if not old:
        # A first version lists no element changes: everything is new.
        summary["elements_added"] = []
    return summary
