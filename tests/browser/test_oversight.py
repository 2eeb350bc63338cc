"""Oversight in a real browser: case search with facets, an Excel export opened with
openpyxl, the duty board changing when a new alert arrives, clicking through the risk map,
and handing a task to a named responder."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect
from test_walkthrough import login, no_sideways_scroll

pytestmark = pytest.mark.browser


def desktop_only(page: Any) -> None:
    if page.size_name != "desktop":
        pytest.skip("checked once, on the desktop")


def test_search_narrows_with_facets(page: Any, live_server: dict[str, Any]) -> None:
    url = live_server["url"]
    yellow = live_server["open_case"](value=30.0, town="town.02")
    red = live_server["open_case"](value=120.0, town="town.22")
    login(page, live_server, "anweiban")
    page.locator('[data-nav="cases"]').click()
    page.wait_for_url(f"{url}/cases/")
    assert page.locator(f'tr[data-case="{yellow}"]').count() == 1
    assert page.locator(f'tr[data-case="{red}"]').count() == 1
    page.locator('[data-facet="level"] a[data-value="red"]').click()
    page.wait_for_url(re.compile(r"level=red"))
    assert page.locator(f'tr[data-case="{red}"]').count() == 1
    assert page.locator(f'tr[data-case="{yellow}"]').count() == 0
    # The town facet counts red cases only, and still offers the other towns' counts.
    town = page.locator('[data-facet="town"] a[data-value="town.22"] .count')
    assert int(town.inner_text()) >= 1
    page.locator('[data-facet="level"] a[data-value="red"]').click()  # toggles off
    page.wait_for_url(f"{url}/cases/")
    page.get_by_label("关键词").fill(yellow)
    page.locator('form.filters button[type="submit"]').click()
    page.wait_for_url(re.compile(r"q="))
    assert page.locator("tr.case-row").count() == 1
    no_sideways_scroll(page)


def test_excel_export_downloads_the_filtered_list(page: Any, live_server: dict[str, Any]
                                                  ) -> None:
    desktop_only(page)
    url = live_server["url"]
    case_no = live_server["open_case"](value=60.0, town="town.13")
    login(page, live_server, "anweiban")
    page.goto(f"{url}/cases/?town=town.13")
    expected = page.locator("tr.case-row").count()
    assert expected >= 1
    with page.expect_download() as info:
        page.get_by_role("link", name="导出 Excel").click()
    data = Path(info.value.path()).read_bytes()
    status = page.locator("[data-export-status]")
    assert status.inner_text().endswith("✓")
    rows = list(load_workbook(BytesIO(data), read_only=True).active.iter_rows(values_only=True))
    assert rows[0][0] == "案件编号"
    assert len(rows) - 1 == expected
    assert case_no in [r[0] for r in rows[1:]]
    assert {r[6] for r in rows[1:]} == {"川沙新镇"}


def test_the_board_changes_when_a_new_alert_arrives(page: Any, live_server: dict[str, Any]
                                                    ) -> None:
    url = live_server["url"]
    login(page, live_server, "anweiban")
    page.locator('[data-nav="board"]').click()
    page.locator("[data-board][data-updated]").wait_for()
    tile = page.locator('[data-figure="open"] .n')
    before = int(tile.inner_text())
    live_server["open_case"](value=30.0, town="town.02")
    # The page polls every 5 seconds: the new case shows without a reload.
    expect(tile).to_have_text(str(before + 1), timeout=12_000)
    # Every figure is a link to the case list with that figure's filter.
    href = page.locator('[data-figure="open"]').get_attribute("href")
    assert href.startswith("/cases/?") and "state=open" in href
    cell = page.locator('[data-cell="gas:yellow"]')
    with page.expect_navigation():
        cell.click()
    assert "scenario=gas" in page.url and "level=yellow" in page.url
    assert page.locator("tr.case-row").count() == int(page.locator("[data-total]").inner_text())
    no_sideways_scroll(page)
    if page.size_name == "desktop":
        page.set_viewport_size({"width": 1920, "height": 1080})
        page.goto(f"{url}/board?screen=big")
        page.locator("[data-board][data-updated]").wait_for()
        height = page.evaluate("document.querySelector('.duty-board').scrollHeight")
        assert height <= 1080, "the big screen needs no scrolling"


def _pixel(box: dict[str, float], lon: float, lat: float) -> tuple[float, float]:
    """Where the map draws a longitude/latitude (the axes of static/src/oversight.js)."""
    width, height = box["width"] - 20, box["height"] - 20
    return (box["x"] + 10 + (lon - 121.44) / 0.56 * width,
            box["y"] + 10 + (31.37 - lat) / 0.53 * height)


def test_the_map_clicks_through_to_a_towns_cases_and_a_points_case(
        page: Any, live_server: dict[str, Any]) -> None:
    desktop_only(page)
    url = live_server["url"]
    live_server["open_case"](value=30.0, town="town.22")
    login(page, live_server, "anweiban")
    page.locator('[data-nav="map"]').click()
    page.locator("[data-risk-map][data-loaded]").wait_for()
    assert "示意图" in page.locator("[data-map-note]").inner_text()
    box = page.locator("[data-risk-map]").bounding_box()
    with page.expect_navigation():
        page.mouse.click(*_pixel(box, 121.600, 31.200))  # 张江
    assert "town=town.22" in page.url and "state=open" in page.url
    assert page.locator("tr.case-row").count() >= 1
    newest = live_server["open_case"](value=30.0, town="town.02")  # its point lies on top
    page.goto(f"{url}/map")
    page.locator("[data-risk-map][data-loaded]").wait_for()
    with page.expect_navigation():
        page.mouse.click(*_pixel(box, 121.5, 31.23))
    assert page.url.endswith(f"/cases/{newest}")


def test_a_department_head_hands_a_task_to_a_named_responder(
        page: Any, live_server: dict[str, Any]) -> None:
    desktop_only(page)
    url = live_server["url"]
    case_no = live_server["open_case"](value=30.0, town="town.02")
    login(page, live_server, "jjw_head")
    page.goto(f"{url}/cases/{case_no}")
    page.locator("details.delegate summary").first.click()
    form = page.locator("details.delegate form").first
    choice = form.locator("option", has_text="(rs_lujiazui)").get_attribute("value")
    form.get_by_label("指派给").select_option(value=choice)
    form.get_by_label("原因").fill("卫师傅离现场最近")
    with page.expect_navigation():
        form.locator('[data-action="delegate"]').click()
    assert "已移交给" in page.locator(".flash.success").inner_text()
    assert "卫师傅离现场最近" in page.locator(".delegated-note").first.inner_text()
    login(page, live_server, "rs_lujiazui")
    page.goto(f"{url}/inbox?status=mine")
    row = page.locator(f'tr[data-case="{case_no}"]')
    assert row.locator("[data-delegated]").count() == 1
