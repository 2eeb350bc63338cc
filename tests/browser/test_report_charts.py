"""The figure page's ECharts charts in a real Chromium: drawn under the content security
policy, and a click on a bar leads to the case list with the bar's filter."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from test_designer import login

pytestmark = pytest.mark.browser


def test_charts_draw_and_drill_down(page: Any, live_server: dict[str, Any],
                                    screenshot: Any) -> None:
    url = live_server["url"]
    live_server["open_case"]()
    login(page, url, "anweiban", live_server["accounts"]["anweiban"])
    page.goto(f"{url}/reports/")
    for name in ("trend", "levels", "scenarios"):
        page.wait_for_selector(f'[data-chart="{name}"][data-ready="true"] svg',
                               timeout=20_000)
    screenshot(page, "report-figures")
    # The case list may answer anything here; what matters is where the click leads.
    page.console_allowed.append("status of 404")
    chart = page.locator('[data-chart="scenarios"]')
    box = chart.bounding_box()
    assert box is not None
    bars = page.locator('[data-chart="scenarios"] svg path[fill="#1f5fa8"]')
    assert bars.count() >= 1
    with page.expect_navigation():
        bars.first.click()
    target = urlsplit(page.url)
    assert target.path == "/cases/"
    query = parse_qs(target.query)
    assert query["scenario"] == ["gas"] and "opened_from" in query
