"""The process designer in a real browser: every committed BPMN file survives bpmn-js + the
properties panel + the Camunda 7 moddle unchanged for the engine, and edits are validated."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import HandbookVersion
from app.services import demo
from helpers import assert_quiet_console, watch_console
from workflows import CompiledVersion, compile_version
from workflows.timers import timer_definitions

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ALL_BPMN = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "bpmn").rglob("*.bpmn"))
DESKTOP = {"width": 1280, "height": 860}


def deploy_handbooks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict]]:
    """Deploy and publish the handbooks into the live server's database, as `make seed` does;
    answer each handbook's newest version as (id, files)."""
    (db_file,) = tmp_path_factory.getbasetemp().glob("live[0-9]*/live.db")
    app = create_app(DATABASE_URL=f"sqlite:///{db_file}",
                     SECRET_KEY="browser-test-secret-0123456789")
    with app.app_context():
        demo.publish_demo_handbooks(now=app.extensions["clock"]())
        db.session.commit()
        latest = {v.handbook_key: (v.id, dict(v.files)) for v in db.session.scalars(
            select(HandbookVersion).order_by(HandbookVersion.number))}
        db.engine.dispose()
    return latest


@pytest.fixture(scope="module")
def versions(live_server: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, tuple[int, dict]]:
    return deploy_handbooks(tmp_path_factory)


def login(page: Any, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{url}/")


@pytest.fixture
def designer_page(chromium: Any, live_server: dict[str, Any]) -> Iterator[Any]:
    """A desktop page logged in as the business administrator."""
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    page.size_name = "desktop"
    watch_console(page)
    login(page, live_server["url"], "hb_admin", live_server["accounts"]["hb_admin"])
    yield page
    try:
        assert_quiet_console(page)
    finally:
        context.close()


def open_designer(page: Any, url: str, version_id: int, name: str) -> None:
    page.goto(f"{url}/designer/versions/{version_id}/{name}")
    page.wait_for_selector("[data-designer][data-state=ready]", timeout=20_000)


def bundle_of(versions: dict[str, tuple[int, dict]], name: str) -> tuple[int, dict]:
    """A version that holds `name` (shared sub-processes sit in every scenario's bundle)."""
    for key in sorted(versions):
        version_id, files = versions[key]
        if name in files:
            return version_id, files
    raise AssertionError(f"{name} is in no deployed version")


def compiled(files: dict[str, str], replace: dict[str, str] | None = None) -> CompiledVersion:
    merged = {**files, **(replace or {})}
    return compile_version({n: t.encode("utf-8") for n, t in merged.items()
                            if n.endswith(".bpmn")})


def engine_view(version: CompiledVersion, process_id: str) -> dict[str, Any]:
    """What the engine and the app read from one process: elements with lanes, flow, timers,
    events, conditions, scripts, called processes, extension properties and form fields."""
    spec = version.spec(process_id)
    view: dict[str, Any] = {"elements": version.elements(process_id), "timers": [],
                            "tasks": {}, "forms": {}}
    for task_spec in spec.task_specs.values():
        element_id = getattr(task_spec, "bpmn_id", None)
        if element_id is None:
            continue
        definition = getattr(task_spec, "event_definition", None)
        view["timers"] += [(element_id, type(d).__name__, d.expression)
                           for d in timer_definitions(definition)]
        view["tasks"][element_id] = {
            "outputs": sorted(o.name for o in task_spec.outputs),
            "event": (type(definition).__name__, getattr(definition, "name", None),
                      getattr(definition, "code", None)) if definition else None,
            "conditions": sorted((getattr(condition, "args", [None])[0] or "", target) for
                                 condition, target in getattr(task_spec, "cond_task_specs", [])),
            "default": getattr(task_spec, "default_task_spec", None),
            "script": getattr(task_spec, "script", None),
            "calls": getattr(task_spec, "spec", None)
            if type(task_spec).__name__ == "CallActivity" else None,
            "interrupting": getattr(task_spec, "cancel_activity", None),
            "extensions": getattr(task_spec, "extensions", None),
        }
        if type(task_spec).__name__ == "UserTask":
            view["forms"][element_id] = [f.to_dict() for f in
                                         version.form_fields(process_id, element_id)]
    view["timers"].sort()
    return view


def ids_in(xml: str) -> set[str]:
    tree = etree.fromstring(xml.encode("utf-8"))
    return {str(el.get("id")) for el in tree.iter() if isinstance(el.tag, str) and el.get("id")}


SELECT_PANEL_ELEMENTS = """async () => {
  const modeler = window.designer.modeler;
  const registry = modeler.get('elementRegistry');
  const selection = modeler.get('selection');
  const wanted = registry.filter((e) => {
    const bo = e.businessObject;
    return e.type === 'bpmn:UserTask' || (bo.eventDefinitions || []).some(
      (d) => d.$type === 'bpmn:TimerEventDefinition');
  });
  let groups = 0;
  for (const element of wanted) {
    selection.select(element);
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    groups += document.querySelectorAll('[data-designer-panel] .bio-properties-panel-group')
      .length ? 1 : 0;
  }
  selection.select(null);
  return { selected: wanted.length, rendered: groups };
}"""


def test_every_bpmn_file_round_trips_through_the_modeler(
        designer_page: Any, live_server: dict[str, Any],
        versions: dict[str, tuple[int, dict]]) -> None:
    assert len(ALL_BPMN) == 22
    url = live_server["url"]
    started = time.monotonic()
    first_id, _ = bundle_of(versions, ALL_BPMN[0])
    open_designer(designer_page, url, first_id, ALL_BPMN[0])
    changed: dict[str, list[str]] = {}
    for name in ALL_BPMN:
        version_id, files = bundle_of(versions, name)
        warnings = designer_page.evaluate(
            "url => window.designer.load(url).then((w) => w.map((x) => x.message))",
            f"{url}/handbooks/versions/{version_id}/files/{name}")
        assert warnings == [], f"{name}: import warnings {warnings}"
        panel = designer_page.evaluate(SELECT_PANEL_ELEMENTS)
        assert panel["rendered"] == panel["selected"] > 0, f"{name}: the panel stayed empty"
        exported = designer_page.evaluate("() => window.designer.exportXML()")
        assert ids_in(exported) == ids_in(files[name]), f"{name}: ids differ"
        before, after = compiled(files), compiled(files, {name: exported})
        assert after.process_ids == before.process_ids
        for process_id in before.process_ids:
            old, new = engine_view(before, process_id), engine_view(after, process_id)
            differences = [part for part in old if old[part] != new[part]]
            if differences:
                changed.setdefault(name, []).append(f"{process_id}: {differences}")
    assert changed == {}, f"the round trip changed what the engine reads: {changed}"
    assert time.monotonic() - started < 90


def test_renamed_task_exports_and_validates(designer_page: Any, live_server: dict[str, Any],
                                            versions: dict[str, tuple[int, dict]],
                                            screenshot: Any) -> None:
    name = "bpmn/scenario_gas.bpmn"
    version_id, files = versions["gas"]
    open_designer(designer_page, live_server["url"], version_id, name)
    designer_page.evaluate("""() => {
      const modeler = window.designer.modeler;
      const task = modeler.get('elementRegistry').get('Activity_dispose');
      modeler.get('modeling').updateLabel(task, '到场处置(已改名)');
      modeler.get('selection').select(task);
    }""")
    designer_page.locator('[data-designer-panel] [data-group-id="group-CamundaPlatform__Form"]'
                          ' .bio-properties-panel-group-header').click()
    screenshot(designer_page, "designer-panel")
    designer_page.locator("[data-designer-validate]").click()
    designer_page.wait_for_selector("[data-designer][data-validation=valid]")
    assert designer_page.locator("[data-designer-problems] li").count() == 0  # lint too
    exported = designer_page.evaluate("() => window.designer.exportXML()")
    assert 'name="到场处置(已改名)"' in exported
    renamed = {e.element_id: e.name for e in
               compiled(files, {name: exported}).elements("scenario_gas")}
    assert renamed["Activity_dispose"] == "到场处置(已改名)"
    with designer_page.expect_download() as download:
        designer_page.locator("[data-designer-export]").click()
    assert download.value.suggested_filename == "scenario_gas.bpmn"
    assert "到场处置(已改名)" in Path(download.value.path()).read_text(encoding="utf-8")


def test_deleted_start_event_is_reported_and_marked(page: Any, live_server: dict[str, Any],
                                                    versions: dict[str, tuple[int, dict]],
                                                    screenshot: Any) -> None:
    url = live_server["url"]
    login(page, url, "hb_admin", live_server["accounts"]["hb_admin"])
    page.locator('.nav a[data-nav="designer"]').click()
    assert page.locator("section.designer-handbook").count() == len(versions)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, "the page scrolls sideways"
    screenshot(page, "designer-index")
    version_id, _ = versions["gas"]
    row = page.locator(f'section[data-key="gas"] [data-version-id="{version_id}"]')
    row.locator('a[data-file="bpmn/scenario_gas.bpmn"]').click()
    page.wait_for_selector("[data-designer][data-state=ready]", timeout=20_000)
    assert page.locator(".bio-properties-panel").count() == 1
    page.evaluate("""() => {
      const modeler = window.designer.modeler;
      const start = modeler.get('elementRegistry').get('Event_alert');
      modeler.get('modeling').removeElements([start]);
    }""")
    page.locator("[data-designer-validate]").click()
    page.wait_for_selector("[data-designer][data-validation=invalid]")
    problem = page.locator('[data-designer-problems] li[data-source=server]'
                           '[data-element-id="scenario_gas"]')
    assert "流程 scenario_gas 没有开始事件" in problem.inner_text()
    assert "bpmn/scenario_gas.bpmn" in problem.inner_text()
    marked = page.locator('[data-element-id="Participant_scenario_gas"].has-problem')
    assert marked.count() == 1
    assert page.locator("[data-designer-problems] li[data-source=server]").count() == 1
    assert "1" in page.locator("[data-designer-status]").inner_text()
    # The modeller's own rules see it too, before any check.
    lint = page.locator('[data-designer-problems] li[data-source=lint]'
                        '[data-element-id="scenario_gas"]')
    assert "流程缺少开始事件" in lint.inner_text()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, "the page scrolls sideways"
    screenshot(page, "designer-problems")


def test_handbook_checks_are_part_of_validation(designer_page: Any, live_server: dict[str, Any],
                                                versions: dict[str, tuple[int, dict]]) -> None:
    """A special step of gas.json must stay drawn: changing its task id is what deploy refuses."""
    version_id, _ = versions["gas"]
    open_designer(designer_page, live_server["url"], version_id, "bpmn/scenario_gas.bpmn")
    designer_page.evaluate("""() => {
      const modeler = window.designer.modeler;
      const task = modeler.get('elementRegistry').get('Activity_valve_closure');
      modeler.get('modeling').updateProperties(task, {id: 'Activity_valve'});
    }""")
    designer_page.locator("[data-designer-validate]").click()
    designer_page.wait_for_selector("[data-designer][data-validation=invalid]")
    problems = designer_page.locator("[data-designer-problems] li").all_inner_texts()
    assert any("gas.json 中的特殊环节 关阀断气（valve_closure）未画出" in p for p in problems), \
        problems


def test_validate_refuses_a_request_without_xml(designer_page: Any, live_server: dict[str, Any],
                                                versions: dict[str, tuple[int, dict]]) -> None:
    version_id, _ = versions["gas"]
    open_designer(designer_page, live_server["url"], version_id, "bpmn/scenario_gas.bpmn")
    designer_page.console_allowed.append("status of 422")
    answer = designer_page.evaluate("""async () => {
      const root = document.querySelector('[data-designer]');
      const response = await fetch(root.dataset.validateUrl, {
        method: 'POST',
        headers: {'Content-Type': 'application/json', Accept: 'application/json',
                  'X-CSRFToken': root.dataset.csrfToken},
        body: JSON.stringify({name: 'bpmn/scenario_gas.bpmn',
                              version_id: Number(root.dataset.versionId)}),
      });
      return {status: response.status, body: await response.json()};
    }""")
    assert answer["status"] == 422
    assert answer["body"]["code"] == "validation_failed"
    assert answer["body"]["details"] == {"xml": [answer["body"]["details"]["xml"][0]]}


PANEL_TEXT = """async () => {
  const modeler = window.designer.modeler;
  const registry = modeler.get('elementRegistry');
  const selection = modeler.get('selection');
  const kinds = new Map();
  for (const element of registry.getAll()) {
    const type = element.businessObject && element.businessObject.$type;
    const timer = (element.businessObject.eventDefinitions || []).some(
      (d) => d.$type === 'bpmn:TimerEventDefinition');
    const key = type + (timer ? ':timer' : '') + (element.type === 'label' ? ':label' : '');
    if (type && !kinds.has(key) && element.type !== 'label') kinds.set(key, element);
  }
  const seen = {};
  for (const [kind, element] of kinds) {
    selection.select(element);
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    for (const header of document.querySelectorAll(
        '[data-designer-panel] .bio-properties-panel-group-header:not(.open)')) {
      header.click();
    }
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    const panel = document.querySelector('[data-designer-panel]');
    const texts = [];
    for (const node of panel.querySelectorAll(
        'label, .bio-properties-panel-group-header-title, .bio-properties-panel-description,'
        + ' option, button[title], .bio-properties-panel-header-type, h1, h2, h3')) {
      texts.push(node.textContent.trim());
      if (node.title) texts.push(node.title.trim());
    }
    seen[kind] = texts.filter((t) => t);
  }
  selection.select(null);
  return seen;
}"""

# Words that stay as they are in a Chinese panel: names of languages, formats and standards.
LATIN_ALLOWED = {"ID", "Python", "FEEL", "JUEL", "BPMN", "ISO", "URL", "JSON", "XML", "HTTP",
                 "Camunda", "Java", "JavaScript", "Groovy", "REST", "API", "UUID", "SpiffWorkflow",
                 "PT30M", "R2", "PT10M", "cron", "CSS", "HTML", "Spring", "Bean", "BPMNDI",
                 "Zeebe", "Connector", "DMN", "CMMN",
                 "someDate"}  # an example expression


def test_the_properties_panel_speaks_chinese(designer_page: Any, live_server: dict[str, Any],
                                             versions: dict[str, tuple[int, dict]]) -> None:
    """Every kind of element in the gas handbook: the panel's groups, labels, options and
    descriptions, opened one by one, hold no English word."""
    version_id, _ = versions["gas"]
    open_designer(designer_page, live_server["url"], version_id, "bpmn/scenario_gas.bpmn")
    seen = designer_page.evaluate(PANEL_TEXT)
    assert len(seen) >= 6
    english: dict[str, set[str]] = {}
    for kind, texts in seen.items():
        for text in texts:
            for word in re.findall(r"[A-Za-z][A-Za-z]{2,}", text):
                if word not in LATIN_ALLOWED:
                    english.setdefault(kind, set()).add(text)
    assert english == {}, english
