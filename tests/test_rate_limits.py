"""Log-in is rate limited per address and per user name (failed attempts count), with 429 and
Retry-After as JSON for the API and a translated page for the web; with memory storage and
with the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from app.config import ConfigError, load_settings
from helpers import PASSWORD, Browser

REDIS_URL = "redis://127.0.0.1:6379/5"
TOO_MANY = "请求过于频繁"


def _web_login(app: Flask, username: str, password: str, address: str = "127.0.0.1") -> Any:
    browser = Browser(app.test_client())
    browser.client.environ_base["REMOTE_ADDR"] = address
    return browser.login(username, password)


def _api_login(app: Flask, username: str, password: str) -> Any:
    client = app.test_client()
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    return client.post("/api/v1/session", json={"username": username, "password": password},
                       headers={"X-CSRFToken": token})


def _assert_throttled_page(response: Any) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert TOO_MANY in response.get_data(as_text=True)


def _assert_throttled_json(response: Any) -> None:
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= 60
    body = response.get_json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == "rate_limited" and TOO_MANY in body["message"]
    assert body["details"]["retry_after"] == seconds


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Settings for a limiter on memory storage, or on Redis (db 5) under a prefix of its own
    that is removed afterwards."""
    if request.param == "memory":
        yield {}
        return
    redis = pytest.importorskip("redis")
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        connection.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield {"REDIS_URL": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix}
    keys = list(connection.scan_iter(f"*{prefix}*"))
    assert keys, "the limiter wrote nothing to Redis"
    connection.delete(*keys)
    connection.close()


def test_log_in_is_limited_per_user_name(app_with: Callable[..., Flask], make_user,
                                         storage: dict[str, str]) -> None:
    app = app_with(RATE_LIMIT_LOGIN_USER="3/minute", RATE_LIMIT_LOGIN_IP="1000/minute",
                   LOGIN_MAX_FAILURES=100, **storage)
    make_user(username="wei")
    make_user(username="other")
    for _ in range(3):
        assert _web_login(app, "wei", "Wrong-password-1").status_code == 401
    _assert_throttled_page(_web_login(app, "wei", "Wrong-password-1"))
    _assert_throttled_page(_web_login(app, "WEI ", PASSWORD))  # the right password waits too
    _assert_throttled_json(_api_login(app, "wei", PASSWORD))  # web and API share the count
    assert _web_login(app, "wei", "Wrong-password-1", address="10.0.0.9").status_code == 429
    assert _web_login(app, "other", "Wrong-password-1").status_code == 401
    assert _web_login(app, "other", PASSWORD).status_code == 302


def test_log_in_is_limited_per_address(app_with: Callable[..., Flask], make_user,
                                       storage: dict[str, str]) -> None:
    app = app_with(RATE_LIMIT_LOGIN_USER="1000/minute", RATE_LIMIT_LOGIN_IP="3/minute",
                   **storage)
    make_user(username="wei")
    for name in ("anna", "bo", "chen"):
        assert _web_login(app, name, "Guess-password-1", "10.0.0.1").status_code == 401
    _assert_throttled_page(_web_login(app, "dai", "Guess-password-1", "10.0.0.1"))
    assert _web_login(app, "dai", "Guess-password-1", "10.0.0.2").status_code == 401
    assert _web_login(app, "wei", PASSWORD, "10.0.0.2").status_code == 302


def test_successful_log_ins_do_not_count(app_with: Callable[..., Flask], make_user) -> None:
    """An office behind one address logs in at nine: only refusals use up the allowance."""
    app = app_with(RATE_LIMIT_LOGIN_USER="2/minute", RATE_LIMIT_LOGIN_IP="2/minute")
    make_user(username="wei")
    for _ in range(5):
        assert _web_login(app, "wei", PASSWORD).status_code == 302


def test_the_throttled_page_is_in_english_too(app_with: Callable[..., Flask], make_user) -> None:
    app = app_with(RATE_LIMIT_LOGIN_USER="1/minute")
    browser = Browser(app.test_client())
    browser.client.post("/language", data={"locale": "en", "next": "/login",
                                           "csrf_token": browser.csrf("/login")})
    assert browser.login("nobody", "Wrong-password-1").status_code == 401
    response = browser.login("nobody", "Wrong-password-1")
    assert response.status_code == 429
    assert "Too many requests" in response.get_data(as_text=True)


@pytest.mark.parametrize("name, value, words", [
    ("RATE_LIMIT_LOGIN_USER", "lots", "e.g. 10/minute"),
    ("RATE_LIMIT_LOGIN_IP", "", "e.g. 10/minute"),
    ("RATE_LIMIT_ALERTS", "10 per fortnight", "fortnight"),
    ("REDIS_URL", "http://127.0.0.1:6379", "redis://"),
])
def test_a_bad_limit_setting_stops_start_up(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({name: value})
    assert name in str(err.value) and words in str(err.value)


def test_defaults_leave_room_for_a_typhoon_day() -> None:
    from limits import parse_many

    settings = load_settings({})
    assert settings["REDIS_URL"] == ""
    per_second = min(limit.amount / limit.get_expiry()
                     for limit in parse_many(settings["RATE_LIMIT_ALERTS"]))
    assert per_second >= 20  # ten times a busy day's few requests per second per key
    assert parse_many(settings["RATE_LIMIT_LOGIN_USER"])[0].amount == 10
