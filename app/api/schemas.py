"""Marshmallow schemas of the JSON API: what clients send and get back, with per-field errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    validates,
)

from app.current import now
from app.i18n import _l
from app.inputs import MAX_PAGE, DbInteger
from app.models import ATTACHMENT_EXTENSIONS
from app.services.handbook_data import platform_scenarios

LEVELS = ("red", "orange", "yellow", "blue")
CASE_STATUSES = ("open", "closed", "false_alarm", "error")
STATES = ("open", "in_progress", "stuck", "closed", "cancelled", "false_alarm")
LOOPS = ("small", "medium", "big")
SOURCES = ("iot", "big_data", "video_ai", "social")
SORTS = ("-opened", "opened", "-level", "due", "-closed", "case_no")
INBOX_STATUSES = ("ready", "mine", "claimable")
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)
MAX_PER_PAGE = 100

@cache
def scenario_codes() -> tuple[str, ...]:
    """The 15 scenario codes of the platform tree (handbooks/org/platform.json)."""
    return tuple(platform_scenarios())


def clock_now() -> datetime:
    return now()


def _choice(choices: Callable[[], Iterable[str]] | Iterable[str]) -> Callable[[str], None]:
    def check(value: str) -> None:
        allowed = tuple(choices() if callable(choices) else choices)
        if value not in allowed:
            raise ValidationError(str(_l("Must be one of: %(choices)s.",
                                         choices=", ".join(allowed))))
    return check


def _text(max_length: int, *, spaces: bool = True) -> Callable[[str], None]:
    def check(value: str) -> None:
        if not value.strip():
            raise ValidationError(str(_l("Must not be empty.")))
        if len(value) > max_length:
            raise ValidationError(str(_l("At most %(n)d characters.", n=max_length)))
        if not spaces and any(c.isspace() for c in value):
            raise ValidationError(str(_l("Must not contain spaces.")))
    return check


def _text_field(max_length: int, *, spaces: bool = True, **kw: Any) -> fields.String:
    metadata = {"minLength": 1, "maxLength": max_length, **kw.pop("metadata", {})}
    return fields.String(validate=_text(max_length, spaces=spaces), metadata=metadata, **kw)


def _one_of(choices: tuple[str, ...], **kw: Any) -> fields.String:
    metadata = {"enum": list(choices), **kw.pop("metadata", {})}
    return fields.String(validate=_choice(choices), metadata=metadata, **kw)


class StrictFloat(fields.Float):
    """A JSON number: strings and booleans are refused, not coerced; NaN and infinity too."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, str):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Timestamp(fields.AwareDateTime):
    """ISO 8601 with a time zone; handed over in UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        example = "2026-07-26T10:30:00+08:00"
        if not isinstance(value, str):
            raise ValidationError(str(_l("Give an ISO 8601 time such as %(example)s.",
                                         example=example)))
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(str(_l("Give an ISO 8601 time such as %(example)s.",
                                         example=example))) from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValidationError(str(_l("The time has no time zone: add one, such as +08:00 "
                                         "or Z.")))
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
            raise ValidationError(str(_l("Give an ISO 8601 time such as %(example)s.",
                                         example=example))) from None


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine code"})
    message = fields.String(required=True, metadata={"description": "for people"})
    details = fields.Dict(metadata={
        "description": "field -> messages; for a batch, index -> field -> messages"})


# ---------------------------------------------------------------- session

class LoginSchema(Schema):
    username = _text_field(60, required=True)
    password = fields.String(required=True, load_only=True, validate=_text(200))


class NodeRefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class RoleRefSchema(Schema):
    role = fields.Function(lambda a: a.role.value, metadata={"type": "string"})
    node = fields.Nested(NodeRefSchema)


class UserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    must_change_password = fields.Boolean(metadata={
        "description": "true: change the password on the web first; case calls answer 403"})
    roles = fields.List(fields.Nested(RoleRefSchema), attribute="assignments")


class CsrfSchema(Schema):
    csrf_token = fields.String(metadata={"description": "send as the X-CSRFToken header on "
                                                       "POST and DELETE"})


class SessionSchema(CsrfSchema):
    user = fields.Nested(UserSchema)


# ---------------------------------------------------------------- cases (query arguments)

class _PageArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    page = DbInteger(load_default=1, metadata={"minimum": 1, "maximum": MAX_PAGE})
    per_page = DbInteger(load_default=25, metadata={"minimum": 1, "maximum": MAX_PER_PAGE})
    scenario = fields.String(validate=_choice(scenario_codes), metadata={"choices_of":
                                                                         "scenarios"})
    level = _one_of(LEVELS)
    town = DbInteger(metadata={"description": "platform node id (town or village): cases "
                                                   "located in it or under it"})
    case_no = _text_field(40, metadata={"description": "part of a case number"})
    overdue = fields.Boolean(load_default=False)

    @validates("page")
    def _page(self, value: int, **_: Any) -> None:
        if not 1 <= value <= MAX_PAGE:
            raise ValidationError(str(_l("Between 1 and %(n)d.", n=MAX_PAGE)))

    @validates("per_page")
    def _per_page(self, value: int, **_: Any) -> None:
        if not 1 <= value <= MAX_PER_PAGE:
            raise ValidationError(str(_l("Between 1 and %(n)d.", n=MAX_PER_PAGE)))


class CaseListArgs(_PageArgs):
    """The case-list contract (the same parameters as the page GET /cases/). `state`,
    `level`, `scenario` and `town` may repeat; `town` takes a node id or code."""

    status = _one_of(CASE_STATUSES, metadata={"description": "engine status (older filter; "
                                                              "prefer state)"})
    state = _one_of(STATES, metadata={"description": "open (not accepted), in_progress, "
                                                     "stuck, closed, cancelled, false_alarm; "
                                                     "repeatable"})
    town = fields.String(metadata={"description": "platform node id or code (street, town, "  # type: ignore[assignment]
                                                  "Lingang or village): cases located in "
                                                  "or under it; repeatable"})
    industry = _text_field(60, metadata={"description": "industry sub-platform code, e.g. "
                                                        "industry.emergency"})
    department = _text_field(40, metadata={"description": "owner department code"})
    loop = _one_of(LOOPS)
    source = _one_of(SOURCES, metadata={"description": "source type of the alerts"})
    opened_from = fields.String(metadata={"format": "date", "description": "YYYY-MM-DD, "
                                                                           "local date"})
    opened_to = fields.String(metadata={"format": "date"})
    closed_from = fields.String(metadata={"format": "date"})
    closed_to = fields.String(metadata={"format": "date"})
    evidence = fields.Boolean(metadata={"description": "only cases with evidence attached"})
    q = _text_field(100, metadata={"description": "free text: case number, point code and "
                                                  "name, address and text of the alerts, "
                                                  "comments"})
    point_code = _text_field(80)
    sort = _one_of(SORTS, load_default="-opened")
    facets = fields.Boolean(load_default=True, metadata={"description": "count each facet "
                                                                        "(false: skip)"})


class InboxArgs(_PageArgs):
    status = _one_of(INBOX_STATUSES, load_default="ready", metadata={
        "description": "ready: all I may act on; mine: claimed by me; claimable: unclaimed"})


class CommentSchema(Schema):
    body = fields.String(required=True, metadata={"maxLength": 4000})


class AttachmentUploadSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "JPEG, PNG, WebP or PDF (told "
                                                              "by the content, not the name "
                                                              "or declared type), at most "
                                                              "10 MB"})


# ---------------------------------------------------------------- cases (output)

def _overdue(due_at: datetime | None, open_: bool = True) -> bool:
    return bool(open_ and due_at is not None and due_at < clock_now())


class DepartmentRefSchema(Schema):
    code = fields.String()
    name = fields.String()


class PersonSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()


class CaseSummarySchema(Schema):
    case_no = fields.String()
    scenario = fields.String()
    item_code = fields.String()
    item_name = fields.String()
    status = fields.String(metadata={"enum": list(CASE_STATUSES)})
    outcome = fields.String(allow_none=True)
    level = fields.String(metadata={"enum": list(LEVELS)})
    highest_level = fields.String(metadata={"enum": list(LEVELS)})
    loop_level = fields.String()
    point_code = fields.String()
    node = fields.Nested(NodeRefSchema, metadata={"description": "town, village or (unknown "
                                                                 "point) the scenario"})
    owner_department = fields.Nested(DepartmentRefSchema, allow_none=True)
    unit = fields.String()
    first_value = fields.Float()
    last_value = fields.Float()
    alert_count = fields.Integer()
    first_seen = fields.DateTime()
    last_seen = fields.DateTime()
    opened_at = fields.DateTime()
    accepted_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    overdue = fields.Function(lambda c: _overdue(c.due_at, c.status == "open"),
                              metadata={"type": "boolean"})


class PointSchema(Schema):
    code = fields.String()
    name = fields.String()
    scenario = fields.String()
    object_type = fields.String()
    lat = fields.Float(allow_none=True)
    lon = fields.Float(allow_none=True)


class AlertRecordSchema(Schema):
    id = fields.Integer()
    received_at = fields.DateTime()
    observed_at = fields.DateTime()
    point_code = fields.String()
    indicator = fields.String()
    value = fields.Float()
    unit = fields.String()
    level = fields.String(allow_none=True)
    disposition = fields.String()
    source_type = fields.String()
    unknown_point = fields.Boolean()


class FormOptionSchema(Schema):
    id = fields.String()
    name = fields.String()


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class FormFieldSchema(Schema):
    id = fields.String()
    label = fields.String()
    type = fields.String(metadata={"enum": ["string", "long", "boolean", "date", "enum"]})
    required = fields.Boolean()
    readonly = fields.Boolean()
    min = fields.Float(allow_none=True)
    max = fields.Float(allow_none=True)
    minlength = fields.Integer(allow_none=True)
    maxlength = fields.Integer(allow_none=True)
    default = fields.Function(lambda f: _jsonable(f.default), metadata={"nullable": True})
    options = fields.List(fields.Nested(FormOptionSchema))
    properties = fields.Function(lambda f: dict(f.properties), metadata={"type": "object"})


class TaskSchema(Schema):
    id = fields.Integer(metadata={"description": "use in /tasks/{id}/claim|release|complete"})
    case_no = fields.Function(lambda t: t.case.case_no, metadata={"type": "string"})
    element_id = fields.String()
    name = fields.String()
    role = fields.String()
    level = fields.String()
    status = fields.String(metadata={"enum": ["ready", "completed", "cancelled"]})
    created_at = fields.DateTime()
    due_at = fields.DateTime(allow_none=True)
    overdue = fields.Function(lambda t: _overdue(t.due_at, t.status == "ready"),
                              metadata={"type": "boolean"})
    claimed_by = fields.Nested(PersonSchema, allow_none=True)
    claimed_at = fields.DateTime(allow_none=True)


class OpenTaskSchema(TaskSchema):
    """A ready task with its form; `can_act` says whether the caller may claim/complete it."""

    can_act = fields.Boolean()
    form = fields.List(fields.Nested(FormFieldSchema))


class CaseBriefSchema(Schema):
    case_no = fields.String()
    scenario = fields.String()
    item_name = fields.String()
    level = fields.String()
    node = fields.Nested(NodeRefSchema)


class InboxItemSchema(TaskSchema):
    case = fields.Nested(CaseBriefSchema)


class CommentOutSchema(Schema):
    id = fields.Integer()
    author = fields.Nested(PersonSchema)
    body = fields.String()
    created_at = fields.DateTime()


class AttachmentOutSchema(Schema):
    id = fields.Integer()
    filename = fields.String(metadata={"description": "the name the client gave, cleaned: for "
                                                      "display only"})
    stored_name = fields.String(metadata={"description": "the server's name for the file, "
                                                         "with the extension of its type"})
    content_type = fields.String(metadata={"enum": sorted(ATTACHMENT_EXTENSIONS), "description":
                                           "detected from the content"})
    size = fields.Integer()
    sha256 = fields.String()
    uploaded_by = fields.Nested(PersonSchema)
    created_at = fields.DateTime()


class EventSchema(Schema):
    seq = fields.Integer()
    at = fields.DateTime()
    kind = fields.String()
    actor_name = fields.String(allow_none=True)
    element_id = fields.String(allow_none=True)
    element_name = fields.String(allow_none=True)
    lane = fields.String(allow_none=True)
    old_state = fields.String(allow_none=True)
    new_state = fields.String(allow_none=True)
    data = fields.Dict()


class CaseDetailSchema(Schema):
    case = fields.Nested(CaseSummarySchema)
    point = fields.Nested(PointSchema, allow_none=True)
    alerts = fields.List(fields.Nested(AlertRecordSchema), metadata={
        "description": "the latest 200 alerts of the case, oldest first"})
    tasks = fields.List(fields.Nested(OpenTaskSchema))
    comments = fields.List(fields.Nested(CommentOutSchema))
    attachments = fields.List(fields.Nested(AttachmentOutSchema))
    events = fields.List(fields.Nested(EventSchema))


class _PageSchema(Schema):
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()
    pages = fields.Integer()


class FacetValueSchema(Schema):
    value = fields.String()
    label = fields.String()
    count = fields.Integer()
    selected = fields.Boolean()


class CasePageSchema(_PageSchema):
    items = fields.List(fields.Nested(CaseSummarySchema))
    facets = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(
        FacetValueSchema)), metadata={"description": "per facet (state, level, scenario, "
                                                     "town, department, loop, source): each "
                                                     "value counted with every other filter"})


class InboxCountsSchema(Schema):
    total = fields.Integer()
    overdue = fields.Integer()
    mine = fields.Integer()
    by_level = fields.Dict(keys=fields.String(), values=fields.Integer())
    scenarios = fields.Dict(keys=fields.String(), values=fields.Integer())
    towns = fields.Method("_towns")

    def _towns(self, counts: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"id": i, "name": n, "count": c} for i, n, c in counts.get("towns", [])]


class InboxPageSchema(_PageSchema):
    items = fields.List(fields.Nested(InboxItemSchema))
    counts = fields.Nested(InboxCountsSchema)


class CompletedSchema(Schema):
    case = fields.Nested(CaseSummarySchema)
    tasks = fields.List(fields.Nested(OpenTaskSchema), metadata={
        "description": "the case's open tasks after the step"})
