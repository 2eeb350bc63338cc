"""A warning from inbox to closed case in a real browser, on a desktop and on a phone: each
role's first day as the README's demo walk-through tells it."""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any

import pytest

pytestmark = pytest.mark.browser


def png() -> bytes:
    """A valid one-pixel PNG, as a phone camera would send a photo."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x20\x80\x20")) + chunk(b"IEND", b""))


def login(page: Any, server: dict[str, Any], username: str) -> None:
    # A request still in flight (an icon, a stylesheet) may set the previous user's session
    # cookie again after it is cleared: let the page settle first, and clear again if the
    # login page still redirects.
    page.wait_for_load_state("networkidle")
    for _ in range(3):
        page.context.clear_cookies()
        page.goto(f"{server['url']}/login")
        if page.url.rstrip("/").endswith("/login"):
            break
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(server["accounts"][username])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{server['url']}/")


def submit(page: Any) -> None:
    with page.expect_navigation():
        page.locator('[data-action="complete"]').click()
    assert page.locator(".flash.error").count() == 0, page.locator(".flash.error").inner_text()


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, "the page scrolls sideways"


def test_a_warning_from_inbox_to_closed_case(page: Any, live_server: dict[str, Any],
                                             screenshot: Any) -> None:
    url = live_server["url"]
    case_no = live_server["open_case"]()

    # The district's business administrator assesses a new warning: the readings it asks
    # to judge are on the page, as a series with a small chart.
    fresh = live_server["open_case"](assess=False)
    login(page, live_server, "hb_admin")
    page.locator('[data-nav="inbox"]').click()
    page.locator(f'tr[data-case="{fresh}"] a.step').click()
    assert page.get_by_role("heading", name=re.compile("研判")).count() == 1
    readings = page.locator("#readings")
    assert readings.locator("svg polyline").count() == 1
    assert "%LEL" in readings.inner_text()
    no_sideways_scroll(page)
    screenshot(page, "assessment")

    # The responder of 陆家嘴 finds the new work order in the inbox and claims it.
    login(page, live_server, "rs_lujiazui")
    page.locator('[data-nav="inbox"]').click()
    row = page.locator(f'tr[data-case="{case_no}"]')
    assert "接单受理" in row.inner_text() and "燃气" in row.inner_text()
    assert row.locator(".badge.level-yellow").count() == 1
    no_sideways_scroll(page)
    screenshot(page, "inbox")
    row.locator('[data-action="claim"]').click()
    page.wait_for_url(re.compile(r"/tasks/\d+$"))

    # Accept (接单), by keyboard: the fields are labelled and reachable with Tab.
    assert page.get_by_role("heading", name=re.compile("接单受理")).count() == 1
    page.get_by_label("预计到场(分钟)", exact=False).fill("15")
    page.get_by_label("预计到场(分钟)", exact=False).press("Tab")
    submit(page)

    # Dispose (到场处置): still the responder's, with no second claim; the handbook's
    # measures as a checklist, then the form.
    assert page.get_by_role("heading", name=re.compile("到场处置")).count() == 1
    assert page.locator('[data-action="claim"]').count() == 0
    assert page.locator('[data-action="release"]').count() == 1
    page.locator('.measures input[value="retest_gas"]').check()
    page.locator('.measures input[value="no_open_flame"]').check()
    page.get_by_label("现场情况及处置", exact=False).fill("到场复测 28%LEL, 开井通风。")
    no_sideways_scroll(page)
    screenshot(page, "task-form")
    submit(page)

    # The scenario's own feedback step.
    page.get_by_label("处置后复测浓度", exact=False).fill("0")
    page.locator('input[name="gas_cut_off"][value="false"]').check()
    submit(page)

    # Cancel the warning (销警) with a photo taken on site.
    assert page.get_by_role("heading", name=re.compile("销警")).count() == 1
    page.get_by_label("销警原因", exact=False).select_option("hazard_removed")
    page.locator('input[name="evidence__upload"]').set_input_files(
        files=[{"name": "现场照片.png", "mimeType": "image/png", "buffer": png()}])
    page.get_by_label("销警说明", exact=False).fill("复测正常, 漏点已封堵。")
    submit(page)

    # Closed-loop feedback (闭环反馈), reusing the photo already attached; what the case
    # knows is filled in already: the arrival time and the measures ticked at disposal.
    assert page.get_by_role("heading", name=re.compile("闭环反馈")).count() == 1
    assert page.get_by_label("到场时间", exact=False).input_value() != ""
    assert "复测" in page.get_by_label("已采取的措施", exact=False).input_value()
    page.get_by_label("原因分类", exact=False).select_option("hazard_removed")
    page.get_by_label("处置位置", exact=False).fill("陆家嘴环路 1000 号东侧窨井")
    page.get_by_label("到场处置人数", exact=False).fill("3")
    page.get_by_label("已采取的措施", exact=False).fill("复测、通风、查漏堵漏。")
    page.get_by_label("伤亡人数", exact=False).fill("0")
    page.get_by_label("遗留风险", exact=False).first.select_option("none")
    page.locator('fieldset.evidence input[type="checkbox"]').first.check()
    submit(page)
    page.wait_for_url(f"{url}/cases/{case_no}")

    # The department head verifies (核查) from the inbox.
    login(page, live_server, "jjw_head")
    page.goto(f"{url}/inbox")
    page.locator(f'tr[data-case="{case_no}"] a.step').click()
    assert page.get_by_role("heading", name=re.compile("核查")).count() == 1
    judged = page.locator("#to-verify")
    for text in ("闭环反馈", "复测、通风、查漏堵漏。", "销警", "复测正常, 漏点已封堵。"):
        assert text in judged.inner_text(), text
    # The photo opens in the page, not as a download.
    judged.locator("a.thumb[data-viewer]").first.click()
    assert page.locator("dialog#viewer[open] img").count() == 1
    screenshot(page, "verify")
    page.keyboard.press("Escape")
    page.locator('select[name="verified"]').select_option("approve")
    submit(page)

    # The case is closed, with its whole history and the diagram marked.
    page.goto(f"{url}/cases/{case_no}")
    assert page.locator('h1 [data-status="closed"]').inner_text() == "已结案"
    timeline = page.locator("#timeline").inner_text()
    for step in ("接单受理", "到场处置", "销警", "闭环反馈", "核查", "现场照片.png",
                 "卫处置", "冯建交"):
        assert step in timeline, step
    diagram = page.locator("#diagram .bpmn-diagram")
    diagram.scroll_into_view_if_needed()
    page.wait_for_selector('#diagram .bpmn-diagram[data-state="ready"]', timeout=15_000)
    done = page.locator('#diagram .djs-element.done[data-element-id="Activity_call_closure"]')
    assert done.count() == 1
    assert page.locator("#diagram .djs-element.active").count() == 0
    no_sideways_scroll(page)
    screenshot(page, "case-closed")

    # Another department's responder does not see it and may not open it.
    login(page, live_server, "rs_elevator")
    page.goto(f"{url}/inbox")
    assert page.locator(f'tr[data-case="{case_no}"]').count() == 0
    page.console_allowed.append("status of 403")
    response = page.goto(f"{url}/cases/{case_no}")
    assert response.status == 403
    assert case_no not in page.locator("main").inner_text()


def test_the_auditor_replays_and_the_tech_administrator_issues_a_key(
        page: Any, live_server: dict[str, Any], screenshot: Any) -> None:
    url = live_server["url"]
    case_no = live_server["open_case"]()
    login(page, live_server, "auditor")
    page.goto(f"{url}/cases/{case_no}")
    assert page.locator('[data-action="complete"]').count() == 0
    page.locator('[data-action="replay"]').click()
    assert page.locator('[data-check="replay"]').count() >= 1
    no_sideways_scroll(page)
    screenshot(page, "replay")
    # The menu of a responder has no handbook list nor designer.
    login(page, live_server, "rs_lujiazui")
    nav = page.locator("nav.nav").inner_text()
    assert "指挥手册" not in nav and "流程设计" not in nav
    login(page, live_server, "tech_admin")
    page.goto(f"{url}/operations/api-keys")
    page.locator("#name").fill(f"视频识别{page.size_name}")
    page.locator("#source_type").select_option("video_ai")
    page.locator('input[name="scenarios"][value="gas"]').check()
    with page.expect_navigation():
        page.get_by_role("button", name="签发", exact=True).click()
    assert page.locator('button[data-copy="secret"]').count() == 1
    no_sideways_scroll(page)
    screenshot(page, "api-key")
