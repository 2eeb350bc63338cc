"""Reminders, escalations and notices: in-app notifications to the people a handbook names,
and the same message queued for an outbound channel (a webhook) when one is configured."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from flask import current_app
from sqlalchemy import func, literal, or_, select, update

from app.extensions import db
from app.models import (
    Case,
    Department,
    HandbookVersion,
    NodeKind,
    Notification,
    OutboundMessage,
    PlatformNode,
    Role,
    RoleAssignment,
    User,
)
from app.services import row_batches

if TYPE_CHECKING:
    from app.services.case_engine import Completed
    from app.services.handbook_data import Handbook

# Titles are stored in Chinese, the language of the people they reach; the kind is a code.
NOTICE_TITLES = {
    "push": "新预警工单",
    "reminder": "催办提醒",
    "escalation": "超时升级",
    "supervision": "督办",
    "tracking": "超期未结案跟踪提示",
    "level_upgrade": "预警升级",
    "back_to_normal": "监测值恢复正常",
    "weather_warning": "气象预警发布",
    "handbook_review": "处置手册待审核",
    "delegated": "任务指派",
    "case_step": "关注案件进展",
}
LEVEL_NAMES = {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}
PLACE_KINDS = (NodeKind.TOWN, NodeKind.VILLAGE, NodeKind.LINGANG)
LINE_KINDS = (NodeKind.INDUSTRY, NodeKind.SCENARIO)
ROLE_NAMES = {"responder": "处置人员", "business_admin": "业务管理员",
              "department_head": "部门责任人", "leader_in_charge": "分管责任人",
              "district_office": "区安委办"}
# A notice for an empty lane climbs: it never goes to a role below the lane's own.
ROLE_RANK = {"responder": 0, "business_admin": 1, "department_head": 2,
             "leader_in_charge": 3, "district_office": 4}


@dataclass(frozen=True)
class Recipient:
    id: int
    username: str


@dataclass
class _Batch:
    """Notices sent while `batch()` is open: who holds which role where is asked once (the
    new cases of a batch mostly share their towns and lanes, and the answer does not change
    meanwhile), and the notices are written together when the block ends."""

    recipients: dict[tuple[Any, ...], list[Recipient]] = field(default_factory=dict)
    notices: list[Notification] = field(default_factory=list)


_BATCH: ContextVar[_Batch | None] = ContextVar("notify_batch", default=None)


@contextmanager
def batch() -> Iterator[None]:
    """Within this block, the same question about role holders is asked once, and in-app
    notices are written in one statement at its end (`row_batches.insert_new`)."""
    current = _Batch()
    token = _BATCH.set(current)
    try:
        yield
    finally:
        _BATCH.reset(token)
    row_batches.insert_new(current.notices, attach=False)


def _remembered(key: tuple[Any, ...], ask: Callable[[], list[Recipient]]) -> list[Recipient]:
    current = _BATCH.get()
    if current is None:
        return ask()
    found = current.recipients.get(key)
    if found is None:
        found = current.recipients[key] = ask()
    return found


def recipients(case: Case, roles: Iterable[str], department: str | None = None
               ) -> list[Recipient]:
    """Active users holding one of `roles` on a node that covers the case (town or scenario).

    Only ids and names are read: a reminder needs no account objects (and their roles)."""
    wanted = [r for r in roles if r]
    if not wanted:
        return []
    return _remembered(("lane", tuple(wanted), case.scope_path, case.scenario_path,
                        department), lambda: _recipients(case, wanted, department))


def _recipients(case: Case, wanted: list[str], department: str | None) -> list[Recipient]:
    covers = or_(literal(case.scope_path).like(PlatformNode.path + "%"),
                 literal(case.scenario_path).like(PlatformNode.path + "%"))
    query = (select(User.id, User.username)
             .join(RoleAssignment, RoleAssignment.user_id == User.id)
             .join(PlatformNode, RoleAssignment.node_id == PlatformNode.id)
             .where(User.active.is_(True), RoleAssignment.role.in_(wanted), covers))
    if department:
        query = query.join(Department, User.department_id == Department.id).where(
            Department.code == department)
    with db.session.no_autoflush:  # who holds a role does not depend on pending case writes
        rows = db.session.execute(query.distinct()).all()
    return [Recipient(row.id, row.username) for row in rows]


def _holders(case: Case, role: str, scope: str) -> list[Recipient]:
    """Active holders of `role` for one step of a fallback chain: on the case's town (or its
    village) for `town`, on the scenario or its department's sub-platform for `department`,
    on the district platform itself for `district`."""
    return _remembered(("holders", role, scope, case.scope_path, case.scenario_path),
                       lambda: _find_holders(case, role, scope))


def _find_holders(case: Case, role: str, scope: str) -> list[Recipient]:
    query = (select(User.id, User.username)
             .join(RoleAssignment, RoleAssignment.user_id == User.id)
             .join(PlatformNode, RoleAssignment.node_id == PlatformNode.id)
             .where(User.active.is_(True), RoleAssignment.role == role))
    if scope == "town":
        query = query.where(literal(case.scope_path).like(PlatformNode.path + "%"),
                            PlatformNode.kind.in_(PLACE_KINDS))
    elif scope == "department":
        query = query.where(literal(case.scenario_path).like(PlatformNode.path + "%"),
                            PlatformNode.kind.in_(LINE_KINDS))
    else:
        query = query.where(PlatformNode.kind == NodeKind.DISTRICT)
    with db.session.no_autoflush:
        rows = db.session.execute(query.distinct().order_by(User.id)).all()
    return [Recipient(row.id, row.username) for row in rows]


def _version_of(case: Case) -> HandbookVersion | None:
    return db.session.get(HandbookVersion, case.handbook_version_id)


def fallback_steps(case: Case, lane: str) -> list[dict[str, str]]:
    """The steps a notice for an empty `lane` may climb: the case handbook's chain (or the
    default one), less the steps whose role ranks below the lane's."""
    from app.services.cases import handbook_or_none
    from app.services.handbook_data import fallback_chain

    version = _version_of(case)
    handbook = handbook_or_none(version) if version is not None else None
    chain = fallback_chain(handbook.data if handbook is not None else None)
    floor = ROLE_RANK.get(lane, 0)
    return [dict(step) for step in chain if ROLE_RANK.get(step["role"], 0) >= floor]


def _to_lane(case: Case, lane: str, kind: str, body: str, now: datetime, *,
             department: str | None = None, skip: set[int] | None = None) -> int:
    """Notify a lane's people; when it has nobody in scope, the first step of the fallback
    chain that has somebody, and record on the case who got it and why."""
    from app.services.case_engine import add_event

    skip = skip if skip is not None else set()
    users = recipients(case, [lane], department)
    if users or department:
        return _send(case, [u for u in users if u.id not in skip], kind, body, now, skip)
    version = _version_of(case)
    version_hash = version.content_hash if version else ""
    for step in fallback_steps(case, lane):
        found = _holders(case, step["role"], step["scope"])
        if not found:
            continue
        why = (f"【{ROLE_NAMES.get(lane, lane)}在本案范围内无人, "
               f"转送{ROLE_NAMES.get(step['role'])}】")
        sent = _send(case, [u for u in found if u.id not in skip], kind, why + body, now, skip)
        add_event(case, kind="notice_rerouted", at=now, version_hash=version_hash,
                  actor_name="system",
                  data={"lane": lane, "notice": kind, "role": step["role"],
                        "scope": step["scope"], "to": [u.username for u in found]})
        return sent
    add_event(case, kind="notice_undelivered", at=now, version_hash=version_hash,
              actor_name="system", data={"lane": lane, "notice": kind})
    return 0


def tell(case: Case, lanes: Iterable[str], kind: str, what: str, *, now: datetime) -> int:
    """A notice to the people of some lanes of a case (with the fallback for empty ones)."""
    told: set[int] = set()
    return sum(_to_lane(case, lane, kind, _body(case, what), now, skip=told) for lane in lanes)


def _send(case: Case, users: Iterable[Recipient], kind: str, body: str, now: datetime,
          told: set[int] | None = None) -> int:
    title = f"{NOTICE_TITLES.get(kind, kind)} · {case.case_no}"
    users = list(users)
    if case.is_test:
        return _simulate(case, users, kind, body, now, told)
    count = 0
    current = _BATCH.get()
    for user in users:
        notice = Notification(user_id=user.id, case_id=case.id, kind=kind, title=title,
                              body=body, created_at=now)
        if current is not None:
            current.notices.append(notice)
        else:
            db.session.add(notice)
        count += 1
        if told is not None:
            told.add(user.id)
    if count:
        _queue_outbound(case, kind, title, body, sorted({u.username for u in users}), now)
    return count


def _simulate(case: Case, users: list[Recipient], kind: str, body: str, now: datetime,
              told: set[int] | None) -> int:
    """A test case's notice reaches nobody: its history records whom it would have reached."""
    from app.services.case_engine import add_event

    version = _version_of(case)
    add_event(case, kind="test_notice", at=now,
              version_hash=version.content_hash if version else "", actor_name="system",
              data={"notice": kind, "to": sorted({u.username for u in users}), "body": body})
    if told is not None:
        told.update(u.id for u in users)
    return len(users)


# Outbound channels and the setting that switches each on.
CHANNEL_SETTINGS = {"webhook": "NOTIFY_WEBHOOK_URL", "wecom": "NOTIFY_WECOM_URL",
                    "dingtalk": "NOTIFY_DINGTALK_URL"}


def _queue_outbound(case: Case, kind: str, title: str, body: str, usernames: list[str],
                    now: datetime) -> None:
    """The same message once per configured outbound channel (webhook, work-chat groups)."""
    payload = {"kind": kind, "case_no": case.case_no, "scenario": case.scenario,
               "level": case.level, "title": title, "body": body, "recipients": usernames,
               "at": now.isoformat()}
    for channel, setting in CHANNEL_SETTINGS.items():
        if current_app.config.get(setting):
            db.session.add(OutboundMessage(channel=channel, created_at=now, payload=payload))


def delegated(case: Case, to: User, step: str, by: str, reason: str, *, now: datetime) -> int:
    """Tell the person a task was handed to (and the work-chat groups)."""
    return _send(case, [Recipient(to.id, to.username)], "delegated",
                 _body(case, f"{by} 将「{step}」指派给您：{reason}"), now)


def followers_told(case: Case, completed: Iterable[Completed], *, now: datetime,
                   followed: bool | None = None) -> int:
    """Tell the case's followers which steps were just done (one notice per step);
    `followed=False`: the caller knows nobody follows the case."""
    from app.models import CaseFollower

    names = [e.name for e in completed if e.by_person and e.name]
    if not names or followed is False:
        return 0
    with db.session.no_autoflush:
        rows = db.session.execute(select(User.id, User.username).join(
            CaseFollower, CaseFollower.user_id == User.id).where(
            CaseFollower.case_id == case.id, User.active.is_(True))).all()
    if not rows:
        return 0
    return _send(case, [Recipient(r.id, r.username) for r in rows], "case_step",
                 _body(case, "、".join(dict.fromkeys(names))), now)


def _body(case: Case, what: str) -> str:
    return (f"{case.item_name} {LEVEL_NAMES.get(case.level, case.level)}预警 · "
            f"{case.node.name} · {case.point_code}：{what}")


def after_step(case: Case, completed: Iterable[Completed], *, now: datetime,
               followed: bool | None = None) -> int:
    """Notify for every completed element that carries `notify`/`notice` properties, and the
    case's followers (`followed=False`: the caller knows it has none)."""
    sent = 0
    for element in completed:
        roles = [r.strip() for r in element.properties.get("notify", "").split(",") if r.strip()]
        kind = element.properties.get("notice", "reminder")
        told: set[int] = set()
        for role in roles:
            sent += _to_lane(case, role, kind, _body(case, element.name), now, skip=told)
    return sent + followers_told(case, completed, now=now, followed=followed)


def case_pushed(case: Case, handbook: Handbook, *, now: datetime) -> int:
    """Push a new case to the people the handbook lists for its level (分级推送)."""
    sent = 0
    targets = handbook.data["responsibility"]["notify"].get("push", [])
    owner = handbook.owner_department
    told: set[int] = set()
    for target in targets:
        levels = target.get("levels")
        if levels and case.level not in levels:
            continue
        department = target.get("department")
        sent += _to_lane(case, target["role"], "push", _body(case, "请及时接单受理"), now,
                         department=department if department and department != owner else None,
                         skip=told)
    return sent


def review_waiting(version: HandbookVersion, *, now: datetime) -> int:
    """Tell the department heads over the handbook's owning node that a version waits for
    their review (in the app, and on the webhook when one is configured). The author is not
    told: the author never reviews their own version."""
    node = version.node
    rows = db.session.execute(
        select(User.id, User.username)
        .join(RoleAssignment, RoleAssignment.user_id == User.id)
        .join(PlatformNode, RoleAssignment.node_id == PlatformNode.id)
        .where(User.active.is_(True), RoleAssignment.role == Role.DEPARTMENT_HEAD,
               literal(node.path).like(PlatformNode.path + "%"))
        .distinct().order_by(User.id)).all()
    heads = [Recipient(row.id, row.username) for row in rows if row.id != version.author_id]
    title = f"{NOTICE_TITLES['handbook_review']} · {node.name} v{version.number}"
    body = f"{version.author_name}提交审核：{version.change_note or '（未填写修改说明）'}"
    for head in heads:
        db.session.add(Notification(user_id=head.id, handbook_version_id=version.id,
                                    kind="handbook_review", title=title, body=body,
                                    created_at=now))
    if heads and current_app.config.get("NOTIFY_WEBHOOK_URL"):
        db.session.add(OutboundMessage(channel="webhook", created_at=now, payload={
            "kind": "handbook_review", "handbook": version.handbook_key,
            "number": version.number, "title": title, "body": body,
            "recipients": sorted(h.username for h in heads), "at": now.isoformat()}))
    return len(heads)


def unread_count(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


def for_user(user: User, *, limit: int = 50) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user.id)
                                   .order_by(Notification.id.desc()).limit(limit)))


def mark_read(user: User, ids: Iterable[int] | None, *, now: datetime) -> int:
    stmt = update(Notification).where(Notification.user_id == user.id,
                                      Notification.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    result = db.session.execute(stmt.values(read_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


class Channel(Protocol):
    def deliver(self, payload: dict[str, Any]) -> None: ...


class WebhookChannel:
    """POSTs each message as JSON to one URL; any non-2xx answer is a failed attempt."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()  # an error answer still holds its connection open
            status = exc.code
        if not 200 <= status < 300:
            raise OSError(f"webhook answered {status}")


def _post_json(url: str, payload: dict[str, Any], timeout: float) -> bytes:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, answer = response.status, response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        exc.close()
        status, answer = exc.code, b""
    if not 200 <= status < 300:
        raise OSError(f"robot answered {status}")
    return bytes(answer)


def _robot_ok(answer: bytes, name: str) -> None:
    """Both robots answer 200 with {"errcode": 0} on success and another code otherwise."""
    try:
        found = json.loads(answer or b"{}")
    except ValueError:
        raise OSError(f"{name} answered no JSON") from None
    if not isinstance(found, dict) or found.get("errcode", 0) != 0:
        raise OSError(f"{name} refused: {str(found)[:200]}")


def markdown_text(payload: dict[str, Any]) -> str:
    """The message as the robots' markdown: title, case, level, body, recipients."""
    level = LEVEL_NAMES.get(str(payload.get("level")), str(payload.get("level") or ""))
    lines = [f"### {payload.get('title', '')}",
             f"> 案件: {payload.get('case_no', '')}  等级: {level}",
             "", str(payload.get("body", ""))]
    if payload.get("recipients"):
        lines += ["", "接收人: " + "、".join(str(r) for r in payload["recipients"])]
    return "\n".join(lines)


class WeComChannel:
    """A WeCom (企业微信) group robot: `msgtype: markdown` with `markdown.content`."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url, self.timeout = url, timeout

    def deliver(self, payload: dict[str, Any]) -> None:
        answer = _post_json(self.url, {"msgtype": "markdown",
                                       "markdown": {"content": markdown_text(payload)}},
                            self.timeout)
        _robot_ok(answer, "WeCom")


class DingTalkChannel:
    """A DingTalk (钉钉) group robot: `msgtype: markdown` with a title and text; with a secret,
    the URL carries `timestamp` and `sign` = base64(HMAC-SHA256(secret, "timestamp\\nsecret"))."""

    def __init__(self, url: str, secret: str = "", timeout: float = 5.0,
                 clock: Any = None) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout
        self.clock = clock or time.time

    def signed_url(self) -> str:
        if not self.secret:
            return self.url
        timestamp = str(int(self.clock() * 1000))
        digest = hmac.new(self.secret.encode("utf-8"),
                          f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        sign = urllib.parse.quote_plus(base64.b64encode(digest))
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}timestamp={timestamp}&sign={sign}"

    def deliver(self, payload: dict[str, Any]) -> None:
        answer = _post_json(self.signed_url(), {
            "msgtype": "markdown",
            "markdown": {"title": str(payload.get("title", ""))[:64],
                         "text": markdown_text(payload)}}, self.timeout)
        _robot_ok(answer, "DingTalk")


def channels_from(config: Any) -> dict[str, Channel]:
    """The outbound channels the configuration switches on, by name."""
    found: dict[str, Channel] = {}
    if config.get("NOTIFY_WEBHOOK_URL"):
        found["webhook"] = WebhookChannel(config["NOTIFY_WEBHOOK_URL"])
    if config.get("NOTIFY_WECOM_URL"):
        found["wecom"] = WeComChannel(config["NOTIFY_WECOM_URL"])
    if config.get("NOTIFY_DINGTALK_URL"):
        found["dingtalk"] = DingTalkChannel(config["NOTIFY_DINGTALK_URL"],
                                            config.get("NOTIFY_DINGTALK_SECRET", ""))
    return found


MAX_ATTEMPTS = 5


def deliver_pending(channel: Channel | Mapping[str, Channel], *, now: datetime,
                    batch: int = 100) -> tuple[int, int]:
    """Send queued outbound messages; returns (sent, failed). The caller commits.

    One channel serves every message (the generic webhook), or a mapping by channel name
    serves the messages queued for each; messages of a channel not given wait."""
    sent = failed = 0
    by_name = channel if isinstance(channel, Mapping) else None
    query = select(OutboundMessage).where(OutboundMessage.status == "pending")
    if by_name is not None:
        query = query.where(OutboundMessage.channel.in_(list(by_name)))
    rows = db.session.scalars(query.order_by(OutboundMessage.id).limit(batch)
                              .with_for_update(skip_locked=True)).all()
    for row in rows:
        row.attempts += 1
        target = by_name[row.channel] if by_name is not None else channel
        try:
            target.deliver(row.payload)  # type: ignore[union-attr]
        except Exception as exc:  # any transport failure is retried, then parked
            row.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
            failed += 1
        else:
            row.status, row.sent_at = "sent", now
            sent += 1
    return sent, failed
