"""The web shell in a real browser, at desktop and phone size."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


def _login(page: Any, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def test_login_refusal_is_shown(page: Any, live_server: dict[str, Any], screenshot: Any) -> None:
    page.console_allowed.append("status of 401")
    _login(page, live_server["url"], "rs_lujiazui", "wrong-password")
    assert page.locator("#login-error").inner_text() == (
        "用户名或密码错误，或账号已被临时锁定。请稍后再试，或请安全管理员解锁。")
    screenshot(page, "login-error")


def test_responder_home_and_tree(page: Any, live_server: dict[str, Any], screenshot: Any) -> None:
    url = live_server["url"]
    _login(page, url, "rs_lujiazui", live_server["accounts"]["rs_lujiazui"])
    page.wait_for_url(f"{url}/")
    card = page.locator('[data-role="responder"]')
    assert "处置人员" in card.inner_text()
    assert "陆家嘴街道" in card.inner_text()
    # Nothing that needs another role is offered.
    assert page.get_by_role("link", name="账号管理").count() == 0
    screenshot(page, "home-responder")
    page.get_by_role("link", name="平台体系").first.click()
    assert page.locator('tr[data-kind="village"] td.num').first.inner_text() == "1523"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, "the page scrolls sideways"
    screenshot(page, "tree")


def test_security_admin_sees_accounts(page: Any, live_server: dict[str, Any],
                                      screenshot: Any) -> None:
    url = live_server["url"]
    _login(page, url, "secadmin", live_server["accounts"]["secadmin"])
    page.wait_for_url(f"{url}/")
    page.get_by_role("link", name="账号管理").first.click()
    page.wait_for_url(f"{url}/admin/users")  # count() does not wait for the new page
    assert page.get_by_role("link", name="rs_zhangjiang").count() == 1
    screenshot(page, "accounts")
    page.get_by_role("button", name="English").click()
    assert page.get_by_role("heading", name="Accounts").count() == 1


def test_the_browser_refuses_inline_script(page: Any, live_server: dict[str, Any]) -> None:
    """The policy is in force in a real browser, and the console check sees a violation."""
    page.goto(f"{live_server['url']}/login")
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        ran = page.evaluate("""() => {
          const script = document.createElement('script');
          script.textContent = 'window.injected = true';
          document.head.appendChild(script);
          return window.injected === true;
        }""")
    assert ran is False
    assert any("Content Security Policy" in m for m in page.console_problems)
    page.console_problems.clear()
