"""Signed-in sessions at the edge: started fresh at log-in, renewed, ended; and the checks every
request makes (ended on the server, idle too long, older than the absolute lifetime).

The cookie holds the account id with its session generation (User.get_id); the accounts
service raises the generation to end every session of an account at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app, session
from flask_login import login_user, logout_user

from app.models import User

# Kept across a new session: a preference, not a credential.
_KEPT_ON_RENEWAL = ("locale",)
LOGIN_TIME = "since"
LAST_SEEN = "seen"


def start(user: User, *, now: datetime) -> None:
    """A new session for a log-in: nothing of the old one's content or identity survives."""
    kept = {key: session[key] for key in _KEPT_ON_RENEWAL if key in session}
    session.clear()
    session.update(kept)
    session.permanent = True
    login_user(user)
    session[LOGIN_TIME] = session[LAST_SEEN] = now.isoformat()


def renew(user: User, *, now: datetime) -> None:
    """This session goes on under the account's new generation (its own password change);
    its log-in time, and so its absolute end, stay."""
    since = session.get(LOGIN_TIME)
    start(user, now=now)
    if since is not None:
        session[LOGIN_TIME] = since


def end() -> None:
    logout_user()
    session.clear()


def idle_limit() -> timedelta:
    return timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])


def absolute_limit() -> timedelta:
    return timedelta(hours=current_app.config["SESSION_ABSOLUTE_HOURS"])


def too_old(now: datetime) -> bool:
    since = session.get(LOGIN_TIME)
    return since is None or now - datetime.fromisoformat(since) > absolute_limit()


def idle(now: datetime) -> bool:
    seen = session.get(LAST_SEEN)
    return seen is not None and now - datetime.fromisoformat(seen) > idle_limit()


def touch(now: datetime) -> None:
    session[LAST_SEEN] = now.isoformat()


def names_an_account() -> bool:
    """The cookie names an account. When Flask-Login found no user for it, the server has
    ended the session (logged out elsewhere, password or roles changed, locked, deactivated)."""
    return "_user_id" in session
