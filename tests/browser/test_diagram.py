"""The case diagram macro: a read-only bpmn-js view with completed, active and overdue marks,
checked on the designer's preview page at desktop and phone size."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import render_template_string
from test_designer import deploy_handbooks, login

from app import create_app

pytestmark = pytest.mark.browser

MARKS = {"completed": ["Event_alert", "Activity_call_assessment", "Gateway_verdict"],
         "active": ["Activity_dispose"], "overdue": ["Activity_call_accept"]}
CLASS_OF = {"completed": "done", "active": "active", "overdue": "overdue"}


@pytest.fixture(scope="module")
def versions(live_server: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, tuple[int, dict]]:
    return deploy_handbooks(tmp_path_factory)


def canvas_zoom(page: Any) -> float:
    return float(page.evaluate(
        "() => document.querySelector('.bpmn-diagram').bpmnViewer.get('canvas').zoom()"))


def test_preview_marks_the_case_progress(page: Any, live_server: dict[str, Any],
                                         versions: dict[str, tuple[int, dict]],
                                         screenshot: Any) -> None:
    url = live_server["url"]
    # A responder sees case diagrams too: the preview needs nothing beyond handbook.view.
    login(page, url, "rs_lujiazui", live_server["accounts"]["rs_lujiazui"])
    version_id, _ = versions["gas"]
    query = "&".join(f"{kind}={','.join(ids)}" for kind, ids in MARKS.items())
    page.goto(f"{url}/designer/preview/{version_id}?{query}")
    box = page.locator(".bpmn-diagram")
    page.wait_for_selector(".bpmn-diagram[data-state=ready]", timeout=20_000)
    assert box.get_attribute("role") == "img"
    assert json.loads(box.get_attribute("data-marks")) == MARKS
    assert box.get_attribute("data-missing-marks") is None
    for kind, ids in MARKS.items():
        for element_id in ids:
            shape = page.locator(f'.bpmn-diagram g.djs-element[data-element-id="{element_id}"]')
            assert CLASS_OF[kind] in shape.get_attribute("class").split(), element_id
    assert page.locator(".bpmn-diagram g.djs-element.done").count() == 3
    # The outline colour comes from the marker CSS.
    stroke = page.evaluate("""() => getComputedStyle(document.querySelector(
        '.bpmn-diagram g.overdue .djs-visual > :first-child')).stroke""")
    assert stroke == "rgb(198, 40, 40)"

    # The box stays inside the page; the diagram scrolls and zooms inside it.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, "the page scrolls sideways"
    frame = box.bounding_box()
    assert frame["width"] <= page.viewport_size["width"]
    # The first view shows where the case stands (the overdue step first).
    overdue = page.locator('.bpmn-diagram g.djs-element[data-element-id="Activity_call_accept"]')
    spot = overdue.bounding_box()
    assert frame["x"] <= spot["x"] and spot["x"] + spot["width"] <= frame["x"] + frame["width"]
    first = canvas_zoom(page)
    assert first >= 0.5 if page.size_name == "phone" else first <= 1
    screenshot(page, "case-diagram")
    page.locator('[data-diagram-zoom="in"]').click()
    assert canvas_zoom(page) == pytest.approx(first * 1.25, rel=0.01)
    page.locator('[data-diagram-zoom="fit"]').click()
    assert canvas_zoom(page) <= first
    page.locator('[data-diagram-zoom="out"]').click()
    assert canvas_zoom(page) < first


TOUCH = """([steps]) => {
  const box = document.querySelector('.bpmn-diagram');
  const canvas = box.bpmnViewer.get('canvas');
  const rect = box.getBoundingClientRect();
  const send = (type, id, x, y) => box.dispatchEvent(new PointerEvent(type, {
    pointerId: id, pointerType: 'touch', bubbles: true,
    clientX: rect.left + x, clientY: rect.top + y}));
  const before = {...canvas.viewbox(), zoom: canvas.zoom()};
  for (const [type, id, x, y] of steps) { send(type, id, x, y); }
  const after = {...canvas.viewbox(), zoom: canvas.zoom()};
  return {dx: after.x - before.x, dy: after.y - before.y, ratio: after.zoom / before.zoom,
          zoom: before.zoom};
}"""


def test_touch_pans_and_pinches_the_diagram(page: Any, live_server: dict[str, Any],
                                            versions: dict[str, tuple[int, dict]]) -> None:
    url = live_server["url"]
    login(page, url, "rs_lujiazui", live_server["accounts"]["rs_lujiazui"])
    page.goto(f"{url}/designer/preview/{versions['gas'][0]}")
    page.wait_for_selector(".bpmn-diagram[data-state=ready]", timeout=20_000)
    pan = page.evaluate(TOUCH, [[["pointerdown", 1, 200, 150], ["pointermove", 1, 140, 110],
                                 ["pointerup", 1, 140, 110]]])
    assert pan["dx"] == pytest.approx(60 / pan["zoom"], rel=0.01)
    assert pan["dy"] == pytest.approx(40 / pan["zoom"], rel=0.01)
    pinch = page.evaluate(TOUCH, [[["pointerdown", 1, 150, 150], ["pointerdown", 2, 250, 150],
                                   ["pointermove", 1, 100, 150], ["pointermove", 2, 300, 150],
                                   ["pointerup", 1, 100, 150], ["pointerup", 2, 300, 150]]])
    assert pinch["ratio"] == pytest.approx(2, rel=0.01)


def test_preview_of_a_missing_file_is_not_found(page: Any, live_server: dict[str, Any],
                                                versions: dict[str, tuple[int, dict]]) -> None:
    url = live_server["url"]
    login(page, url, "hb_admin", live_server["accounts"]["hb_admin"])
    version_id, _ = versions["gas"]
    page.console_allowed.append("status of 404")
    response = page.goto(f"{url}/designer/preview/{version_id}?file=bpmn/nothing.bpmn")
    assert response.status == 404


def test_macro_contract() -> None:
    """What the case page gets: JSON marks in a single-quoted attribute, escaped, keys filled."""
    app = create_app(DATABASE_URL="sqlite://", SECRET_KEY="macro-test-secret-0123456789")
    with app.test_request_context():
        html = render_template_string(
            '{% from "_diagram.html" import diagram %}'
            '{{ diagram("/x.bpmn?a=1&b=2", {"active": ["Task_\'quoted\'"]}, label="<b>") }}')
    tag = re.search(r'<div class="bpmn-diagram"[^>]*>', html)
    assert tag is not None
    assert 'data-xml-url="/x.bpmn?a=1&amp;b=2"' in tag.group(0)
    marks = re.search(r"data-marks='([^']*)'", tag.group(0))
    assert marks is not None
    assert json.loads(marks.group(1)) == {"completed": [], "active": ["Task_'quoted'"],
                                          "overdue": []}
    assert 'aria-label="&lt;b&gt;"' in tag.group(0)
    assert 'src="/static/dist/viewer.js"' in html
    assert 'href="/static/dist/viewer.css"' in html
