"""What the case page shows of a case's history: timeline lines and diagram marks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app, url_for
from flask_babel import gettext as _
from jinja2 import TemplateNotFound
from lxml import etree
from sqlalchemy import select

from app.extensions import db
from app.models import Attachment, Case, CaseEvent, CaseTask, HandbookVersion, User
from app.services.engine import compiled
from app.timezone import local_zone
from app.web.util import now
from workflows import CompiledVersion, FormField

_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
# Engine events worth a line in the default timeline (the rest: "show every engine step").
_SHOWN_DONE = frozenset({"UserTask", "BoundaryEvent", "IntermediateCatchEvent", "EndEvent",
                         "StartEvent"})


def widget(form_field: FormField) -> str:
    return dict(form_field.properties).get("widget", "")


def local_input(value: Any) -> str:
    """A stored ISO time as the value of a `datetime-local` input (Shanghai wall time)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(local_zone())
    return moment.strftime("%Y-%m-%dT%H:%M")


def attachments(case: Case) -> list[Attachment]:
    return list(db.session.scalars(select(Attachment).where(Attachment.case_id == case.id)
                                   .order_by(Attachment.id)))


def events_of(case: Case) -> list[CaseEvent]:
    return list(db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                   .order_by(CaseEvent.seq)))


@dataclass
class Entry:
    """One line of a case's history, ready to show."""

    event: CaseEvent
    who: str
    details: list[tuple[str, str, list[Attachment]]]
    process: str  # the process the event's element belongs to, "" when none

    @property
    def element_type(self) -> str:
        return str((self.event.data or {}).get("type") or "")


def _key_event(case: Case, event: CaseEvent) -> bool:
    if event.kind == "input":
        return False
    if event.kind != "task":
        return True
    data = event.data or {}
    kind = data.get("type")
    if kind == "StartEvent" and data.get("process") == case.process_id:
        return False  # the same moment as "case opened"
    return (event.new_state == "COMPLETED" and kind in _SHOWN_DONE) or \
        (event.new_state == "READY" and kind == "UserTask")


def _shown(f: FormField, value: Any, files: dict[int, Attachment]
           ) -> tuple[str, list[Attachment]]:
    if value is None or value == "":
        return "—", []
    if widget(f) == "file":
        found = [files[int(v)] for v in str(value).split(",") if v.isdigit() and int(v) in files]
        return ("" if found else str(value)), found
    if f.type == "boolean":
        return (_("Yes") if value else _("No")), []
    if f.options:
        return next((o.name for o in f.options if o.id == value), str(value)), []
    if widget(f) == "datetime":
        return local_input(value).replace("T", " "), []
    return str(value), []


def timeline(case: Case, events: list[CaseEvent], spec: CompiledVersion, *,
              everything: bool) -> list[Entry]:
    ids = {e.actor_id for e in events if e.actor_id}
    names = dict(db.session.execute(select(User.id, User.display_name).where(
        User.id.in_(ids))).tuples().all()) if ids else {}
    files = {a.id: a for a in attachments(case)}
    # Claims and releases name an element but not its process: the engine's events do.
    where = {e.element_id: str(e.data.get("process") or "") for e in events
             if e.kind == "task" and e.element_id and e.data}
    entries = []
    for event in events:
        if not (everything or _key_event(case, event)):
            continue
        details = []
        delta = ((event.data or {}).get("delta") or {}).get("updated") or {}
        if event.new_state == "COMPLETED" and delta and event.element_id:
            for f in spec.form_fields(str(event.data.get("process")), event.element_id):
                if f.id in delta:
                    details.append((f.label, *_shown(f, delta[f.id], files)))
        who = names.get(event.actor_id or 0) or (
            event.actor_name if event.actor_name not in (None, "system") else _("System"))
        entries.append(Entry(event, str(who), details, str(
            (event.data or {}).get("process") or where.get(event.element_id or "", ""))))
    return entries


def _layout(version: HandbookVersion, spec: CompiledVersion) -> dict[str, Any]:
    """Which file draws each process (and event sub-process), and what each call activity
    calls: cached per version, as versions never change."""
    cache = current_app.extensions.setdefault("case_diagram_layout", {})
    found = cache.get(version.content_hash)
    if found is None:
        files: dict[str, str] = {}
        names: dict[str, str] = {}
        for name, text in sorted(version.files.items()):
            if name.endswith(".bpmn"):
                root = etree.fromstring(text.encode("utf-8"), _XML)
                for node in root.iter(f"{_BPMN}process", f"{_BPMN}subProcess"):
                    key = node.get("id", "")
                    files.setdefault(key, name)
                    names.setdefault(key, node.get("name") or key)
        calls = {ts.bpmn_id: ts.spec for pid in spec.process_ids
                 for ts in spec.spec(pid).task_specs.values()
                 if ts.__class__.__name__ == "CallActivity" and getattr(ts, "bpmn_id", None)}
        found = cache[version.content_hash] = {"files": files, "calls": calls, "names": names}
    return found  # type: ignore[no-any-return]


def diagram(case: Case, version: HandbookVersion, events: list[CaseEvent], process: str, *,
            step: Entry | None = None, at: datetime | None = None) -> dict[str, Any]:
    """The diagram of `process`'s file with what the events reached marked; at a replay
    `step`, the events up to it with the step's own element as the active one. Overdue is
    judged at `at` (a test run's virtual clock), else now."""
    layout = _layout(version, compiled(version))
    name = layout["files"].get(process) or layout["files"].get(case.process_id, "")
    drawn = {pid for pid, file in layout["files"].items() if file == name}
    last: dict[str, str] = {}
    labels: dict[str, str] = {}
    for event in events:
        if event.kind == "task" and event.element_id and \
                (event.data or {}).get("process") in drawn:
            last[event.element_id] = event.new_state or ""
            labels[event.element_id] = event.element_name or ""
    done = {el for el, state in last.items() if state == "COMPLETED"}
    # An event sub-process waits for the whole case: not what anyone is working on.
    active = {el for el, state in last.items()
              if state in ("READY", "STARTED") and el not in layout["files"]}
    late: list[CaseTask] = []
    if step is not None:
        active = {step.event.element_id} if step.event.element_id else set()
        done -= active
    else:
        current = at or now()
        late = [t for t in db.session.scalars(select(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.status == "ready"))
            if t.due_at is not None and t.due_at < current]
    overdue = {el for el in active if any(
        t.element_id == el or layout["calls"].get(el) == t.process_id for t in late)}
    touched = {(e.data or {}).get("process") for e in events if e.kind == "task"}
    runnable = compiled(version).process_ids
    return {"name": name, "process": process,
            "xml_url": url_for("handbooks.file", version_id=version.id, name=name),
            "marks": {"completed": sorted(done), "active": sorted(active - overdue),
                      "overdue": sorted(overdue)}, "labels": labels,
            "choices": sorted(((p, layout["names"][p]) for p in touched
                               if p in layout["files"] and p in runnable),
                              key=lambda c: (c[0] != case.process_id, c[0]))}


def diagram_macro_exists() -> bool:
    """Whether the shared diagram macro exists yet (the page shows a list without it)."""
    try:
        current_app.jinja_env.get_template("_diagram.html")
    except TemplateNotFound:
        return False
    return True
