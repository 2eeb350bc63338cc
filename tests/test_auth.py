"""Log-in, log-out, lock-out, idle timeout, password policy and CSRF, each with its message."""

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditRecord, Role, User
from helpers import PASSWORD


def test_login_and_logout(browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    response = browser.login("wei")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "测试wei" in browser.text("/")
    response = browser.post("/logout")
    assert response.status_code == 302
    assert "您已退出登录" in browser.text("/login")
    assert browser.get("/").status_code == 302


REFUSED = "用户名或密码错误，或账号已被临时锁定。请稍后再试，或请安全管理员解锁。"


def _lock(browser, username: str) -> None:
    for _ in range(5):
        assert browser.login(username, "Wrong-password-1").status_code == 401


def _api_login(client, username: str, password: str) -> tuple[int, dict]:
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    response = client.post("/api/v1/session", json={"username": username, "password": password},
                           headers={"X-CSRFToken": token})
    return response.status_code, response.get_json()


def test_unknown_user_wrong_password_and_locked_account_look_the_same(app, browser,
                                                                       make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    make_user((Role.RESPONDER, "town.02"), username="locked")
    _lock(browser, "locked")
    attempts = {"wrong": ("wei", "Not-the-password-1"),
                "unknown": ("nobody", "Not-the-password-1"),
                "locked, wrong password": ("locked", "Not-the-password-1"),
                "locked, right password": ("locked", PASSWORD)}
    pages = {}
    for case, (username, password) in attempts.items():
        response = browser.login(username, password)
        assert response.status_code == 401, case
        page = response.get_data(as_text=True).replace(f'value="{username}"', "")
        pages[case] = re.sub(r'name="csrf_token" value="[^"]+"', "", page)
        assert REFUSED in pages[case], case
    assert len(set(pages.values())) == 1  # nothing on the page tells the cases apart
    answers = {case: _api_login(app.test_client(), *attempt)
               for case, attempt in attempts.items()}
    assert len({(status, body["code"], body["message"]) for status, body in answers.values()}) == 1
    assert answers["unknown"] == (401, {"code": "bad_credentials", "message": REFUSED,
                                        "details": {}})


def test_the_lock_is_in_the_audit_trail(app, browser, make_user, clock) -> None:
    account = make_user((Role.RESPONDER, "town.02"), username="wei")
    _lock(browser, "wei")
    with app.app_context():
        [lock] = db.session.scalars(select(AuditRecord).where(
            AuditRecord.action == "account.lock")).all()
    assert lock.object_type == "user" and lock.object_id == str(account["id"])
    assert lock.actor_id is None and lock.remote_addr == "127.0.0.1"
    assert lock.after == {"locked_until": "2026-07-26T02:15:00+00:00", "failed_logins": 5}


def test_empty_login_form_says_what_is_missing(browser) -> None:
    response = browser.client.post("/login", data={"username": "", "password": "",
                                                   "csrf_token": browser.csrf("/login")})
    assert response.status_code == 400
    assert "请输入用户名和密码。" in response.get_data(as_text=True)


def test_deactivated_account_cannot_log_in(browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="gone", active=False)
    response = browser.login("gone")
    assert response.status_code == 401
    assert "该账号已停用，请联系管理员。" in response.get_data(as_text=True)


def test_five_failures_lock_the_account_for_a_while(app, browser, make_user, clock) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    for _ in range(5):
        assert browser.login("wei", "Wrong-password-1").status_code == 401
    locked = browser.login("wei")  # the right password no longer helps
    assert locked.status_code == 401
    assert REFUSED in locked.get_data(as_text=True)
    clock.advance(minutes=16)
    assert browser.login("wei").status_code == 302
    with app.app_context():
        results = db.session.scalars(select(AuditRecord.result).where(
            AuditRecord.action == "login").order_by(AuditRecord.id)).all()
    assert results[-7:] == ["wrong_password"] * 4 + ["locked_now", "locked", "ok"]


def test_missing_csrf_token_is_refused_with_a_message(browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    response = browser.client.post("/login", data={"username": "wei", "password": "x"})
    assert response.status_code == 400
    assert "表单安全令牌缺失或已过期" in response.get_data(as_text=True)
    browser.login("wei")
    response = browser.client.post("/logout")
    assert response.status_code == 400
    assert browser.get("/").status_code == 200  # still logged in


def test_idle_session_is_logged_out(browser, make_user, clock) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    browser.login("wei")
    assert browser.get("/").status_code == 200
    clock.advance(minutes=29)
    assert browser.get("/").status_code == 200
    clock.advance(minutes=31)
    response = browser.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "您已 30 分钟无操作" in browser.text("/login")


def test_expired_password_must_be_changed_first(app, browser, make_user, clock) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    clock.advance(days=91)
    browser.login("wei")
    response = browser.get("/tree")
    assert response.status_code == 302 and response.headers["Location"] == "/account/password"
    page = browser.text("/account/password")
    assert "请先修改密码再继续。" in page
    weak = browser.post("/account/password", {"old_password": "Test-pass-2026",
                                              "new_password": "short",
                                              "confirm_password": "short"})
    assert weak.status_code == 422
    body = weak.get_data(as_text=True)
    assert "至少 10 个字符。" in body and "至少三类" in body
    ok = browser.post("/account/password", {"old_password": "Test-pass-2026",
                                            "new_password": "Better-Pass-2027",
                                            "confirm_password": "Better-Pass-2027"})
    assert ok.status_code == 302
    assert browser.get("/tree").status_code == 200
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "wei"))
        assert not user.must_change_password


def test_password_change_checks_the_current_password(browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    browser.login("wei")
    response = browser.post("/account/password", {"old_password": "nope",
                                                   "new_password": "Better-Pass-2027",
                                                   "confirm_password": "Better-Pass-2027"})
    assert response.status_code == 422
    assert "不正确。" in response.get_data(as_text=True)
    mismatch = browser.post("/account/password", {"old_password": "Test-pass-2026",
                                                  "new_password": "Better-Pass-2027",
                                                  "confirm_password": "Better-Pass-2028"})
    assert "两次输入的新密码不一致。" in mismatch.get_data(as_text=True)


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example/", "/\\/evil.example",
    "\\evil.example", "/\tevil", "javascript:alert(1)"])
def test_open_redirect_is_not_followed(browser, make_user, target: str) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    token = browser.csrf("/login")
    response = browser.client.post("/login", query_string={"next": target}, data={
        "username": "wei", "password": "Test-pass-2026", "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_a_local_next_is_followed(browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    token = browser.csrf("/login")
    response = browser.client.post("/login", query_string={"next": "/tree?x=1"}, data={
        "username": "wei", "password": "Test-pass-2026", "csrf_token": token})
    assert response.headers["Location"] == "/tree?x=1"


def test_english_can_be_chosen(browser) -> None:
    assert "用户名" in browser.text("/login")
    browser.client.post("/language", data={"locale": "en", "next": "/login",
                                           "csrf_token": browser.csrf("/login")})
    page = browser.text("/login")
    assert "User name" in page and 'lang="en"' in page


def test_api_errors_are_json(client) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["code"] == "http_404"
