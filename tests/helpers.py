"""Helpers shared by the tests: a log-in-capable client wrapper and the test password."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

PASSWORD = "Test-pass-2026"
API = "/api/v1"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A test client that logs in like a person and sends the CSRF token like a form would."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def csrf(self, path: str = "/") -> str:
        page = self.client.get(path, follow_redirects=True).get_data(as_text=True)
        match = _CSRF.search(page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, username: str, password: str = PASSWORD) -> Any:
        token = self.csrf("/login")
        return self.client.post("/login", data={"username": username, "password": password,
                                                "csrf_token": token})

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.client.post(path, data={**(data or {}), "csrf_token": self.csrf()}, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def text(self, path: str) -> str:
        return str(self.client.get(path).get_data(as_text=True))


@dataclass
class Clock:
    """A clock the tests move by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 7, 26, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# ---------------------------------------------------------------- browser pages

def watch_console(page: Any) -> None:
    """Collect what the page reports as an error: content security policy violations,
    uncaught exceptions, failed requests; confirmation dialogs are accepted and their
    questions collected in `page.dialogs`. A test that provokes an HTTP error on purpose
    names it in `page.console_allowed` (e.g. "status of 404")."""
    page.console_problems = []
    page.console_allowed = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            page.console_problems.append(f"console error: {message.text} ({message.location})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: page.console_problems.append(f"uncaught: {exc}"))
    # Confirmation questions (data-confirm) are answered yes and kept for the test to read.
    page.dialogs = []

    def on_dialog(dialog: Any) -> None:
        page.dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", on_dialog)


def assert_quiet_console(page: Any) -> None:
    unexpected = [m for m in page.console_problems
                  if not any(allowed in m for allowed in page.console_allowed)]
    assert not unexpected, "\n".join(unexpected)


class Api:
    """A mobile client: a cookie session, and the CSRF token sent as a header on changes."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.token = ""

    def login(self, username: str, password: str = PASSWORD) -> Any:
        self.token = self.client.get(f"{API}/csrf").get_json()["csrf_token"]
        response = self.post("/session", {"username": username, "password": password})
        if response.status_code == 200:
            self.token = response.get_json()["csrf_token"]
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(API + path, **kw)

    def post(self, path: str, body: Any = None, *, csrf: bool = True, **kw: Any) -> Any:
        headers = {"X-CSRFToken": self.token} if csrf else {}
        if body is not None:
            kw["json"] = body
        return self.client.post(API + path, headers=headers, **kw)

    def delete(self, path: str, *, csrf: bool = True) -> Any:
        headers = {"X-CSRFToken": self.token} if csrf else {}
        return self.client.delete(API + path, headers=headers)


def demo_role_nodes() -> dict[Any, str]:
    """Role -> the node its first demo account holds it on: one user per role of the demo."""
    from app.services.demo import DEMO_ACCOUNTS

    found: dict[Any, str] = {}
    for *_, assignments, _phone in DEMO_ACCOUNTS:
        for role, node in assignments:
            found.setdefault(role, node)
    return found
