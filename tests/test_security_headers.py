"""Security headers on every answer, pages and JSON alike: a content security policy without
inline script, no framing, no sniffing, a same-origin referrer, HSTS only behind HTTPS; and
templates with no inline script for the policy to break."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from app import create_app

TEMPLATES = Path(__file__).resolve().parent.parent / "app" / "web" / "templates"


def _policy(header: str) -> dict[str, list[str]]:
    directives = [part.strip().split() for part in header.split(";") if part.strip()]
    return {d[0]: d[1:] for d in directives}


def _assert_hardened(response) -> None:
    csp = _policy(response.headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp.get("script-src", [])
    assert "'unsafe-eval'" not in csp.get("script-src", [])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in {"same-origin", "no-referrer"}


@pytest.mark.parametrize("path, status", [
    ("/login", 200),
    ("/", 302),
    ("/no-such-page", 404),
    ("/api/v1/health", 200),
    ("/api/v1/openapi.json", 200),
    ("/api/v1/nothing-here", 404),
    ("/api/v1/session", 401),
    ("/static/css/app.css", 200),
])
def test_every_answer_carries_the_headers(client, path: str, status: int) -> None:
    response = client.get(path)
    response.close()
    assert response.status_code == status
    _assert_hardened(response)


def test_plain_http_is_served_and_gets_no_hsts(client) -> None:
    response = client.get("/login")
    assert response.status_code == 200  # the embedded default runs on http://127.0.0.1
    assert "Strict-Transport-Security" not in response.headers
    assert "Strict-Transport-Security" not in client.get("/login", base_url="https://x").headers


@pytest.fixture
def https_app(tmp_path: Path) -> Flask:
    app = create_app(DATABASE_URL=f"sqlite:///{tmp_path / 'unused.db'}",
                     SECRET_KEY="test-secret-key-0123456789", SESSION_COOKIE_SECURE=True)
    app.config["TESTING"] = True
    return app


def test_hsts_when_cookies_are_secure(https_app: Flask) -> None:
    client = https_app.test_client()
    response = client.get("/login", base_url="https://ops.example")
    assert response.status_code == 200
    hsts = response.headers["Strict-Transport-Security"]
    assert "max-age=" in hsts and int(re.search(r"max-age=(\d+)", hsts)[1]) >= 15552000
    assert client.get("/login").status_code == 200  # still no redirect: a proxy terminates TLS
    assert https_app.config["SESSION_COOKIE_SECURE"] is True


def test_cookies_stay_usable_over_http_by_default(client) -> None:
    client.get("/login")
    response = client.get("/api/v1/csrf")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def _templates() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


@pytest.mark.parametrize("template", _templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_have_no_inline_script(template: Path) -> None:
    html = template.read_text(encoding="utf-8")
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert "javascript:" not in html
