"""Every demo account's first log-in: each link of its menu opens a page in Chinese, none is
refused or fails, and the menu holds what the role works with and nothing it may not use."""

from __future__ import annotations

from typing import Any

import pytest
from test_walkthrough import login

pytestmark = pytest.mark.browser

DESIGN_LINKS = {"指挥手册", "流程设计"}
# Roles that work on handbooks, and roles that never do.
DESIGNERS = {"hb_admin", "jjw_admin", "yj_admin", "jjw_head", "yj_head"}
NO_DESIGN = {"rs_lujiazui", "rs_zhangjiang", "rs_village", "rs_elevator"}


def test_every_menu_link_of_every_role_opens(page: Any, live_server: dict[str, Any]) -> None:
    if page.size_name != "desktop":
        pytest.skip("checked once, on the desktop")
    url = live_server["url"]
    refused: list[str] = []
    for username in sorted(live_server["accounts"]):
        login(page, live_server, username)
        links = page.locator("nav.nav a").evaluate_all(
            "links => links.map((a) => [a.textContent.trim(), a.getAttribute('href')])")
        names = {name for name, _ in links}
        assert links, f"{username} has an empty menu"
        if username in DESIGNERS:
            assert DESIGN_LINKS & names, f"{username} cannot reach the handbooks: {names}"
        if username in NO_DESIGN:
            assert not DESIGN_LINKS & names, f"{username} sees {DESIGN_LINKS & names}"
        if username == "auditor":  # reads the handbooks a case ran on, designs none
            assert "流程设计" not in names
        for name, href in links:
            response = page.goto(f"{url}{href}" if href.startswith("/") else href)
            if response is None or response.status >= 400:
                refused.append(f"{username}: {name} {href} -> "
                               f"{response.status if response else 'no response'}")
                continue
            assert page.locator("h1").count() >= 1, f"{username}: {name} has no heading"
    assert refused == [], "\n".join(refused)
