"""Sessions end on the server: log-out, password and role changes, lock-out and deactivation
end every session of the account, a copied cookie dies with them, and no session outlives
SESSION_ABSOLUTE_HOURS however busy it is."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditRecord, Role, User
from app.services import org
from helpers import PASSWORD, Browser

SESSION_COOKIE = "session"


def _copy_of(browser: Browser, app: Flask) -> Browser:
    """Another machine holding a copy of `browser`'s session cookie."""
    cookie = browser.client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    thief = Browser(app.test_client())
    thief.client.set_cookie(SESSION_COOKIE, cookie.value)
    return thief


def _second_browser(app: Flask, username: str, password: str = PASSWORD) -> Browser:
    other = Browser(app.test_client())
    assert other.login(username, password).status_code == 302
    return other


def _logged_out(browser: Browser) -> bool:
    response = browser.get("/")
    return response.status_code == 302 and "/login" in response.headers["Location"]


def _user_id(app: Flask, username: str) -> int:
    with app.app_context():
        return int(db.session.scalar(select(User.id).where(User.username == username)))


def _api_session(client: FlaskClient) -> int:
    return client.get("/api/v1/session").status_code


def test_a_copied_cookie_dies_with_the_log_out(app, browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    browser.login("wei")
    thief = _copy_of(browser, app)
    assert thief.get("/").status_code == 200
    assert browser.post("/logout").status_code == 302
    assert _logged_out(thief)
    assert "您的会话已结束，请重新登录。" in thief.text("/login")
    assert _api_session(_copy_of(browser, app).client) == 401


def test_log_out_ends_every_session_of_the_account(app, browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    browser.login("wei")
    phone = _second_browser(app, "wei")
    browser.post("/logout")
    assert _logged_out(phone)


def test_a_copied_api_session_dies_with_the_api_log_out(app, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    client = app.test_client()
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    response = client.post("/api/v1/session", json={"username": "wei", "password": PASSWORD},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 200
    cookie = client.get_cookie(SESSION_COOKIE)
    copy = app.test_client()
    copy.set_cookie(SESSION_COOKIE, cookie.value)
    assert _api_session(copy) == 200
    gone = client.delete("/api/v1/session",
                         headers={"X-CSRFToken": response.get_json()["csrf_token"]})
    assert gone.status_code == 204
    refused = copy.get("/api/v1/session")
    assert refused.status_code == 401 and refused.get_json()["code"] == "login_required"


def test_own_password_change_ends_the_other_sessions_but_keeps_this_one(app, browser,
                                                                        make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    browser.login("wei")
    other = _second_browser(app, "wei")
    thief = _copy_of(browser, app)
    response = browser.post("/account/password", {"old_password": PASSWORD,
                                                  "new_password": "Better-Pass-2027",
                                                  "confirm_password": "Better-Pass-2027"})
    assert response.status_code == 302
    assert browser.get("/").status_code == 200
    assert _logged_out(other)
    assert _logged_out(thief)


def test_password_reset_by_an_administrator_ends_the_sessions(app, as_role, make_user) -> None:
    target = make_user((Role.RESPONDER, "town.02"), username="wei")
    person = _second_browser(app, "wei")
    security = as_role(Role.SECURITY_ADMIN, node="district")
    security.post(f"/admin/users/{target['id']}/password", {"password": "Reset-pass-2026"})
    assert _logged_out(person)


def test_role_changes_end_the_sessions(app, as_role, make_user) -> None:
    target = make_user((Role.RESPONDER, "town.02"), (Role.BUSINESS_ADMIN, "scenario.gas"),
                       username="wei")
    security = as_role(Role.SECURITY_ADMIN, node="district")
    person = _second_browser(app, "wei")
    with app.app_context():
        assignment_id = next(a.id for a in db.session.get(User, target["id"]).assignments
                             if a.role == Role.BUSINESS_ADMIN)
    revoked = security.post(f"/admin/users/{target['id']}/roles/{assignment_id}/revoke")
    assert revoked.status_code == 302
    assert _logged_out(person)

    person = _second_browser(app, "wei")
    with app.app_context():
        node_id = org.node_by_code("scenario.gas").id
    assigned = security.post(f"/admin/users/{target['id']}/roles",
                             {"role": "BUSINESS_ADMIN", "node": node_id})
    assert assigned.status_code == 302
    assert _logged_out(person)


def test_deactivation_ends_the_sessions_for_good(app, as_role, make_user) -> None:
    target = make_user((Role.RESPONDER, "town.02"), username="wei")
    person = _second_browser(app, "wei")
    admin = as_role(Role.SYSTEM_ADMIN, node="district")
    admin.post(f"/admin/users/{target['id']}/active", {"active": "0", "reason": "离职"})
    admin.post(f"/admin/users/{target['id']}/active", {"active": "1", "reason": "返聘"})
    assert _logged_out(person)  # reactivating does not bring the old session back


def test_lock_out_ends_the_sessions(app, browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    person = _second_browser(app, "wei")
    for _ in range(5):
        assert browser.login("wei", "Wrong-password-1").status_code == 401
    assert _logged_out(person)


def test_no_session_outlives_the_absolute_lifetime(app, browser, make_user, clock) -> None:
    assert app.config["SESSION_ABSOLUTE_HOURS"] == 12
    make_user((Role.RESPONDER, "town.02"), username="wei")
    browser.login("wei")
    for _ in range(24):  # busy all day: never idle for 30 minutes
        clock.advance(minutes=29)
        assert browser.get("/").status_code == 200
    clock.advance(minutes=29)  # 12 h 05 min after log-in
    assert _logged_out(browser)
    assert "登录已满 12 小时，请重新登录。" in browser.text("/login")
    with app.app_context():
        result = db.session.scalar(select(AuditRecord.result).where(
            AuditRecord.action == "logout").order_by(AuditRecord.id.desc()).limit(1))
    assert result == "session_expired"
    assert browser.login("wei").status_code == 302


def test_log_in_starts_a_new_session(app, browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    browser.csrf("/login")
    with browser.client.session_transaction() as planted:
        planted["planted"] = "by someone else"
    before = browser.client.get_cookie(SESSION_COOKIE).value
    browser.login("wei")
    after = browser.client.get_cookie(SESSION_COOKIE).value
    assert after != before
    with browser.client.session_transaction() as current:
        assert "planted" not in current


def _user_row(app: Flask, username: str) -> dict[str, Any]:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return {"generation": user.session_generation}


def test_each_ending_is_one_step_of_the_generation(app, browser, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="wei")
    start = _user_row(app, "wei")["generation"]
    browser.login("wei")
    assert _user_row(app, "wei")["generation"] == start
    browser.post("/logout")
    assert _user_row(app, "wei")["generation"] == start + 1
