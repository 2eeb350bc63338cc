"""Accounts: log-in, password policy, opening/changing/deactivating accounts, role assignments.

Every change made by an administrator is written to the audit trail with before and after.
Log-out, a new password, a role change, a lock-out and deactivation end every session of the
account on the server (`end_sessions`), wherever the cookie has been copied to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.i18n import _l
from app.models import Department, PlatformNode, Role, RoleAssignment, User
from app.services import audit
from app.services.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from app.services.permissions import (
    SEPARATED_ADMIN_ROLES,
    can,
    require,
    roles_conflict,
    scope_paths,
)
from app.services.text_match import any_contains

# A hash to compare against when the user does not exist, so both paths cost the same.
_DUMMY_HASH = generate_password_hash("not-a-real-password-0", method="scrypt")


@dataclass(frozen=True)
class SecurityPolicy:
    password_min_length: int = 10
    password_max_age_days: int = 90
    max_failures: int = 5
    lock_minutes: int = 15

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SecurityPolicy:
        return cls(config["PASSWORD_MIN_LENGTH"], config["PASSWORD_MAX_AGE_DAYS"],
                   config["LOGIN_MAX_FAILURES"], config["LOGIN_LOCK_MINUTES"])


class LoginRefused(DomainError):
    status = 401
    code = "login_refused"


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def password_problems(password: str, policy: SecurityPolicy, username: str = "") -> list[Any]:
    problems: list[Any] = []
    if len(password) < policy.password_min_length:
        problems.append(_l("At least %(n)d characters.", n=policy.password_min_length))
    classes = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^\w\s]"))
    if classes < 3:
        problems.append(_l("Use at least three of: lower case, upper case, digits, symbols."))
    if username and username.lower() in password.lower():
        problems.append(_l("Must not contain the user name."))
    return problems


def _check_password_policy(password: str, policy: SecurityPolicy, username: str,
                           field: str = "password") -> None:
    problems = password_problems(password, policy, username)
    if problems:
        raise ValidationFailed(_l("The password is too weak."),
                               details={field: [str(p) for p in problems]})


def snapshot(user: User) -> dict[str, Any]:
    """What the audit trail records of an account: never the password hash."""
    return {
        "username": user.username, "display_name": user.display_name, "phone": user.phone,
        "department": user.department.code if user.department else None,
        "home_node": user.home_node.code if user.home_node else None,
        "active": user.active,
        "roles": sorted(f"{a.role.value}@{a.node.code}" for a in user.assignments),
    }


def authenticate(username: str, password: str, *, now: datetime, policy: SecurityPolicy,
                 remote_addr: str | None = None) -> User:
    """Check a log-in.

    An unknown user, a wrong password and a locked account get the same answer and cost the
    same password hash, so nobody learns from it which accounts exist or are locked. Only the
    right password of a deactivated account is told so.
    """
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    refused = LoginRefused(_l("Wrong user name or password, or the account is temporarily "
                              "locked. Try again later or ask a security administrator to "
                              "unlock it."), code="bad_credentials")
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        audit.record(actor=None, actor_name=username[:60], action="login", object_type="user",
                     result="unknown_user", at=now, remote_addr=remote_addr)
        raise refused
    password_ok = check_password_hash(user.password_hash, password)
    if user.locked_until is not None and user.locked_until > now:
        audit.record(actor=user, action="login", object_type="user", object_id=user.id,
                     result="locked", at=now, remote_addr=remote_addr)
        raise refused
    if not password_ok:
        user.failed_logins += 1
        locking = user.failed_logins >= policy.max_failures
        audit.record(actor=user, action="login", object_type="user", object_id=user.id,
                     result="locked_now" if locking else "wrong_password", at=now,
                     remote_addr=remote_addr)
        if locking:
            _lock(user, now=now, policy=policy, remote_addr=remote_addr)
        raise refused
    if not user.active:
        audit.record(actor=user, action="login", object_type="user", object_id=user.id,
                     result="deactivated", at=now, remote_addr=remote_addr)
        raise LoginRefused(_l("This account has been deactivated. Ask your administrator."),
                           code="deactivated")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if user.password_changed_at + timedelta(days=policy.password_max_age_days) < now:
        user.must_change_password = True
    audit.record(actor=user, action="login", object_type="user", object_id=user.id,
                 at=now, remote_addr=remote_addr)
    return user


def _lock(user: User, *, now: datetime, policy: SecurityPolicy,
          remote_addr: str | None) -> None:
    """Too many failed log-ins in a row: the account is locked for a while, its sessions end,
    and the lock is an entry of its own in the audit trail (by the system, not a person)."""
    failures = user.failed_logins
    user.locked_until = now + timedelta(minutes=policy.lock_minutes)
    user.failed_logins = 0
    end_sessions(user)
    audit.record(actor=None, actor_name="system", action="account.lock", object_type="user",
                 object_id=user.id, after={"locked_until": user.locked_until.isoformat(),
                                           "failed_logins": failures},
                 at=now, remote_addr=remote_addr)


def end_sessions(user: User) -> None:
    """End every session of the account: the sessions carry the generation they began in."""
    # An expression, not a read-modify-write: two administrators acting at once both count.
    user.session_generation = User.session_generation + 1  # type: ignore[assignment]
    db.session.flush()


def record_logout(user: User, *, now: datetime, reason: str = "ok",
                  remote_addr: str | None = None) -> None:
    """One session ended by itself (idle, too old); the account's other sessions go on."""
    audit.record(actor=user, action="logout", object_type="user", object_id=user.id,
                 result=reason, at=now, remote_addr=remote_addr)


def log_out(user: User, *, now: datetime, remote_addr: str | None = None) -> None:
    """The person logs out: every session of the account ends, copies of the cookie too."""
    record_logout(user, now=now, remote_addr=remote_addr)
    end_sessions(user)


def change_own_password(user: User, old: str, new: str, *, now: datetime,
                        policy: SecurityPolicy) -> None:
    if not check_password_hash(user.password_hash, old):
        raise ValidationFailed(_l("The current password is not correct."),
                               details={"old_password": [str(_l("Not correct."))]})
    if old == new:
        raise ValidationFailed(_l("The new password must differ from the current one."),
                               details={"new_password": [str(_l("Same as the current one."))]})
    _check_password_policy(new, policy, user.username, field="new_password")
    user.password_hash = hash_password(new)
    user.password_changed_at = now
    user.must_change_password = False
    audit.record(actor=user, action="password.change", object_type="user", object_id=user.id,
                 at=now)
    end_sessions(user)


def get_account(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_l("No such account."))
    return user


def load_user(session_id: str) -> User | None:
    """The account of a session id ("<user id>:<generation>", see User.get_id), or None when
    the account is gone or deactivated or the session's generation has ended."""
    user_id, _, generation = session_id.partition(":")
    try:
        user = db.session.get(User, int(user_id))
        started_in = int(generation)
    except ValueError:
        return None
    if user is None or not user.active or user.session_generation != started_in:
        return None
    return user


@dataclass(frozen=True)
class AccountPage:
    items: list[User]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def list_accounts(actor: User, *, query: str = "", page: int = 1, per_page: int = 30,
                  include_inactive: bool = True) -> AccountPage:
    """Accounts whose home node lies within the actor's administration scope."""
    paths = scope_paths(actor, "accounts.view")
    if not paths:
        raise Forbidden(_l("You do not have permission for this, or it is outside your scope."))
    stmt = select(User).join(PlatformNode, User.home_node_id == PlatformNode.id).where(
        or_(*[PlatformNode.path.startswith(p) for p in paths]))
    if query:
        stmt = stmt.where(any_contains(query, User.username, User.display_name))
    if not include_inactive:
        stmt = stmt.where(User.active.is_(True))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = max(1, page)
    items = db.session.scalars(
        stmt.order_by(User.username).offset((page - 1) * per_page).limit(per_page)).all()
    return AccountPage(list(items), total, page, per_page)


def _department(code: str | None) -> Department | None:
    if not code:
        return None
    dept = db.session.scalar(select(Department).where(Department.code == code))
    if dept is None:
        raise ValidationFailed(_l("Unknown department."),
                               details={"department": [str(_l("Unknown department."))]})
    return dept


def _node(node_id: int, field: str = "home_node") -> PlatformNode:
    node = db.session.get(PlatformNode, node_id)
    if node is None:
        raise ValidationFailed(_l("Unknown platform node."),
                               details={field: [str(_l("Unknown platform node."))]})
    return node


def open_account(actor: User, *, username: str, display_name: str, password: str,
                 home_node_id: int, department: str | None = None, phone: str | None = None,
                 now: datetime, policy: SecurityPolicy, remote_addr: str | None = None) -> User:
    home = _node(home_node_id)
    require(actor, "accounts.manage", home)
    username = username.strip()
    if db.session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        raise Conflict(_l("The user name is already taken."),
                       details={"username": [str(_l("Already taken."))]})
    _check_password_policy(password, policy, username)
    user = User(username=username, display_name=display_name.strip(),
                password_hash=hash_password(password), home_node=home,
                department=_department(department), phone=phone or None,
                password_changed_at=now, must_change_password=True, created_at=now)
    db.session.add(user)
    db.session.flush()
    audit.record(actor=actor, action="account.open", object_type="user", object_id=user.id,
                 after=snapshot(user), at=now, remote_addr=remote_addr)
    return user


def change_account(actor: User, user: User, *, display_name: str, home_node_id: int,
                   department: str | None, phone: str | None, now: datetime,
                   remote_addr: str | None = None) -> User:
    require(actor, "accounts.manage", user)
    home = _node(home_node_id)
    require(actor, "accounts.manage", home)
    before = snapshot(user)
    user.display_name = display_name.strip()
    user.home_node = home
    user.department = _department(department)
    user.phone = phone or None
    db.session.flush()
    after = snapshot(user)
    if after != before:
        audit.record(actor=actor, action="account.change", object_type="user",
                     object_id=user.id, before=before, after=after, at=now,
                     remote_addr=remote_addr)
    return user


def set_active(actor: User, user: User, active: bool, *, reason: str, now: datetime,
               remote_addr: str | None = None) -> User:
    require(actor, "accounts.manage", user)
    if user.id == actor.id and not active:
        raise DomainError(_l("You cannot deactivate your own account."), code="self_deactivate")
    if not reason.strip():
        raise ValidationFailed(_l("Give a reason."), details={"reason": [str(_l("Required."))]})
    if user.active == active:
        return user
    before = snapshot(user)
    user.active = active
    if not active:
        end_sessions(user)
    db.session.flush()
    audit.record(actor=actor, action="account.activate" if active else "account.deactivate",
                 object_type="user", object_id=user.id, before=before,
                 after={**snapshot(user), "reason": reason.strip()}, at=now,
                 remote_addr=remote_addr)
    return user


def unlock(actor: User, user: User, *, now: datetime, remote_addr: str | None = None) -> User:
    require(actor, "accounts.unlock", user)
    before = {"locked_until": user.locked_until.isoformat() if user.locked_until else None,
              "failed_logins": user.failed_logins}
    user.locked_until = None
    user.failed_logins = 0
    audit.record(actor=actor, action="account.unlock", object_type="user", object_id=user.id,
                 before=before, after={"locked_until": None, "failed_logins": 0}, at=now,
                 remote_addr=remote_addr)
    db.session.flush()
    return user


def reset_password(actor: User, user: User, new_password: str, *, now: datetime,
                   policy: SecurityPolicy, remote_addr: str | None = None) -> User:
    require(actor, "accounts.unlock", user)
    _check_password_policy(new_password, policy, user.username)
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now
    user.must_change_password = True
    audit.record(actor=actor, action="account.reset_password", object_type="user",
                 object_id=user.id, after={"must_change_password": True}, at=now,
                 remote_addr=remote_addr)
    end_sessions(user)
    return user


def assign_role(actor: User, user: User, role: Role, node_id: int, *, now: datetime,
                remote_addr: str | None = None) -> RoleAssignment:
    node = _node(node_id, field="node")
    action = "roles.assign_admin" if role in SEPARATED_ADMIN_ROLES else "roles.assign"
    require(actor, action, node)
    require(actor, "roles.assign", user)
    if user.id == actor.id:
        raise Forbidden(_l("You cannot change your own roles."), code="self_assign")
    if any(a.role == role and a.node_id == node.id for a in user.assignments):
        raise Conflict(_l("The account already holds this role on this node."))
    if roles_conflict(user.roles() | {role}):
        raise Conflict(_l("System, security and audit administrator roles must be held by "
                          "different people."), code="separation_of_duties")
    before = snapshot(user)
    assignment = RoleAssignment(user=user, role=role, node=node, created_at=now,
                                created_by_id=actor.id)
    db.session.add(assignment)
    db.session.flush()
    audit.record(actor=actor, action="role.assign", object_type="user", object_id=user.id,
                 before=before, after=snapshot(user), at=now, remote_addr=remote_addr)
    end_sessions(user)
    return assignment


def revoke_role(actor: User, assignment_id: int, *, now: datetime,
                remote_addr: str | None = None) -> User:
    assignment = db.session.get(RoleAssignment, assignment_id)
    if assignment is None:
        raise NotFound(_l("No such role assignment."))
    user = assignment.user
    action = ("roles.assign_admin" if assignment.role in SEPARATED_ADMIN_ROLES
              else "roles.assign")
    require(actor, action, assignment.node)
    require(actor, "roles.assign", user)
    if user.id == actor.id:
        raise Forbidden(_l("You cannot change your own roles."), code="self_assign")
    before = snapshot(user)
    user.assignments.remove(assignment)
    db.session.flush()
    audit.record(actor=actor, action="role.revoke", object_type="user", object_id=user.id,
                 before=before, after=snapshot(user), at=now, remote_addr=remote_addr)
    end_sessions(user)
    return user


def assignable_roles(actor: User) -> list[Role]:
    return [r for r in Role
            if can(actor, "roles.assign_admin" if r in SEPARATED_ADMIN_ROLES else "roles.assign")]
