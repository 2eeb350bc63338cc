"""The designer's workspace in a real browser, end to end: import a Camunda Modeler file, see
its problem on the canvas (lint in the browser and the engine's check) and fix it, save the
draft, meet a second tab's newer save (409 naming who and when, shown side by side), compare
versions, test-run the draft with a timer, submit, the department head approves, a new case runs
on the new version and a case of the old version moves to it after its dry run."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import Case, HandbookVersion, User, VersionStatus
from helpers import assert_quiet_console, watch_console

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
GAS = "bpmn/scenario_gas.bpmn"
DESKTOP = {"width": 1280, "height": 860}
FLOW = "Flow_major_risk_to_call_expert"


class Database:
    """The live server's database, read (and its names looked up) from the test."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        (db_file,) = tmp_path_factory.getbasetemp().glob("live[0-9]*/live.db")
        self.app = create_app(DATABASE_URL=f"sqlite:///{db_file}",
                              SECRET_KEY="browser-test-secret-0123456789")

    def __call__(self, read: Any) -> Any:
        with self.app.app_context():
            try:
                return read()
            finally:
                db.session.remove()

    def close(self) -> None:
        with self.app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="module")
def database(live_server: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Database]:
    found = Database(tmp_path_factory)
    yield found
    found.close()


@pytest.fixture
def tab(chromium: Any, live_server: dict[str, Any]) -> Iterator[Any]:
    """`tab(username)`: a desktop page of its own (own cookies, own storage), logged in."""
    contexts: list[Any] = []
    pages: list[Any] = []

    def open_tab(username: str) -> Any:
        context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
        contexts.append(context)
        page = context.new_page()
        page.size_name = "desktop"
        watch_console(page)
        pages.append(page)
        url = live_server["url"]
        page.goto(f"{url}/login")
        page.get_by_label("用户名").fill(username)
        page.get_by_label("密码").fill(live_server["accounts"][username])
        page.get_by_role("button", name="登录").click()
        page.wait_for_url(f"{url}/")
        return page

    yield open_tab
    try:
        for page in pages:
            assert_quiet_console(page)
    finally:
        for context in contexts:
            context.close()


def open_workspace(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("[data-designer][data-state=ready]", timeout=20_000)


def gas_file(database: Database) -> str:
    return database(lambda: db.session.scalar(select(HandbookVersion).where(
        HandbookVersion.handbook_key == "gas",
        HandbookVersion.status == VersionStatus.PUBLISHED)).files[GAS])


def rename(page: Any, element_id: str, name: str) -> None:
    page.evaluate("""([id, name]) => {
      const modeler = window.designer.modeler;
      modeler.get('modeling').updateLabel(modeler.get('elementRegistry').get(id), name);
    }""", [element_id, name])


def test_import_fix_save_conflict_compare_review_and_run(
        tab: Any, live_server: dict[str, Any], database: Database, tmp_path: Path,
        screenshot: Any) -> None:
    started = time.monotonic()
    url = live_server["url"]
    names = dict(database(lambda: [(u.username, u.display_name)
                                   for u in db.session.scalars(select(User))]))
    # A Camunda Modeler export whose condition is written the JUEL way.
    original = gas_file(database)
    condition = '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">major_risk<'
    assert condition in original
    upload = tmp_path / "燃气处置.bpmn"
    upload.write_text(original.replace(condition, condition.replace(">major_risk<",
                                                                     ">${major_risk}<")),
                      encoding="utf-8")

    # A case already running on the published version (it waits for acceptance).
    old_case = live_server["open_case"]()
    admin = tab("hb_admin")
    open_workspace(admin, f"{url}/designer/handbooks/gas")
    assert admin.locator("[data-designer]").get_attribute("data-draft-id") == ""
    # The modeller speaks Chinese: palette and properties panel.
    assert admin.locator('.djs-palette [aria-label="创建开始事件"]').count() == 1
    admin.locator("[data-designer-import]").set_input_files(str(upload))
    admin.wait_for_selector("[data-designer][data-imported]")
    admin.wait_for_selector(f'[data-designer-problems] li[data-source=lint]'
                            f'[data-element-id="{FLOW}"]')
    lint = admin.locator(f'[data-designer-problems] li[data-source=lint][data-element-id="{FLOW}"]')
    assert "major_risk" in lint.inner_text() and "Python" in lint.inner_text()
    assert admin.locator(f'g.djs-connection[data-element-id="{FLOW}"].has-problem').count() == 1
    admin.locator("[data-designer-validate]").click()
    admin.wait_for_selector("[data-designer][data-validation=invalid]")
    server = admin.locator(f'[data-designer-problems] li[data-source=server]'
                           f'[data-element-id="{FLOW}"]')
    assert server.count() >= 1
    screenshot(admin, "workspace-problem")
    # Clicking the problem selects the flow; the panel shows its condition; fix it there.
    lint.locator("button.link").click()
    selected = admin.evaluate(
        "() => window.designer.modeler.get('selection').get().map((e) => e.id)")
    assert selected == [FLOW]
    group = admin.locator('[data-designer-panel] '
                          '[data-group-id="group-CamundaPlatform__Condition"]')
    assert group.locator(".bio-properties-panel-group-header-title").inner_text() == "条件"
    group.locator(".bio-properties-panel-group-header").click()
    field = group.locator('[data-entry-id="conditionExpression"]').locator(
        "textarea, input, [contenteditable]").first
    field.fill("major_risk")
    field.press("Tab")
    admin.wait_for_function(
        f"() => !document.querySelector('[data-designer-problems] li[data-source=lint]"
        f"[data-element-id=\"{FLOW}\"]')")
    rename(admin, FLOW, "是（重大风险）")
    admin.locator("[data-designer-validate]").click()
    admin.wait_for_selector("[data-designer][data-validation=valid]")
    assert admin.locator("[data-designer-problems] li[data-source=server]").count() == 0
    assert admin.locator(f'g.djs-connection[data-element-id="{FLOW}"].has-problem').count() == 0
    # Save: a new draft.
    admin.locator("[data-designer-note]").fill("重大风险分支改用 Python 条件")
    admin.locator("[data-designer-save]").click()
    admin.wait_for_selector("[data-designer][data-save=saved]")
    draft_id = int(admin.locator("[data-designer]").get_attribute("data-draft-id"))
    assert admin.locator("[data-designer]").get_attribute("data-draft-revision") == "1"

    # A second tab (another administrator of the gas line) opens the draft and saves first.
    other = tab("jjw_admin")
    open_workspace(other, f"{url}/designer/handbooks/gas")
    assert other.locator("[data-designer]").get_attribute("data-draft-id") == str(draft_id)
    rename(other, "Flow_no_major_risk", "否（无重大风险）")
    other.locator("[data-designer-save]").click()
    other.wait_for_selector("[data-designer][data-save=saved]")
    # The first tab's next save meets it: 409, naming who and when, and the comparison.
    rename(admin, "Flow_verdict_to_major_risk", "确认预警（已核实）")
    admin.console_allowed.append("status of 409")
    admin.locator("[data-designer-save]").click()
    admin.wait_for_selector("[data-designer][data-save=conflict]")
    admin.wait_for_selector("[data-conflict] [data-compare][data-state=ready]")
    message = admin.locator("[data-conflict-message]").inner_text()
    assert names["jjw_admin"] in message and re.search(r"\d{2}:\d{2}", message), message
    changed = admin.locator("[data-conflict] [data-compare]").get_attribute("data-changed")
    assert "Flow_no_major_risk" in changed.split() and "Flow_verdict_to_major_risk" in \
        changed.split()
    screenshot(admin, "workspace-conflict")
    admin.locator("[data-conflict-keep]").click()
    admin.wait_for_selector("[data-designer][data-save=saved]")
    assert admin.locator("[data-designer]").get_attribute("data-draft-revision") == "3"
    saved = database(lambda: db.session.get(HandbookVersion, draft_id).files[GAS])
    # Mine replaced theirs, after both were shown side by side.
    assert "确认预警（已核实）" in saved and "否（无重大风险）" not in saved
    assert ">major_risk<" in saved

    # Autosave: unsaved work survives a closed tab and is offered back.
    rename(admin, "Flow_verdict_to_major_risk", "未保存的名称")
    admin.wait_for_selector("[data-designer][data-autosaved=yes]")
    admin.evaluate("() => { window.designer.dirty = false; }")
    open_workspace(admin, f"{url}/designer/handbooks/gas")
    admin.wait_for_selector("[data-restore]:not([hidden])")
    admin.locator("[data-restore-discard]").click()

    # The comparison page: the draft against the published version, both diagrams coloured.
    admin.goto(f"{url}/designer/compare?new={draft_id}&file={GAS}")
    admin.wait_for_selector("[data-compare][data-state=ready]", timeout=20_000)
    compare = admin.locator("[data-compare]")
    assert FLOW in compare.get_attribute("data-changed").split()
    assert admin.locator(f'[data-compare-new] [data-element-id="{FLOW}"].diff-changed').count()
    row = admin.locator(f'[data-compare-changes] tr[data-element-id="{FLOW}"]').first
    assert row.locator("td").all_inner_texts()[2:] == ["是", "是（重大风险）"]  # old -> new
    screenshot(admin, "workspace-compare")

    # A test run of the draft: a sample alert, the assessment done, the clock moved past the
    # acceptance limit fires the reminder timer (which reaches nobody).
    admin.goto(f"{url}/designer/versions/{draft_id}/test-runs")
    admin.select_option("#run-item", "GAS-CH4-MANHOLE")
    admin.select_option("#run-level", "yellow")
    admin.fill("#run-note", "黄色预警接单超时")
    admin.click("[data-action=start-run]")
    admin.wait_for_selector("form[data-element=Activity_assessment]")
    form = admin.locator("form[data-element=Activity_assessment]")
    form.locator("[name=verdict]").select_option("confirmed")
    form.locator("[name=major_risk][value=false]").check()
    form.locator("[name=assessment_note]").fill("视频确认燃气浓度超限")
    form.locator("[data-action=complete]").click()
    admin.wait_for_selector("form[data-element=Activity_accept]")
    assert admin.locator("[data-notice=reminder]").count() == 0
    admin.click("[data-action=clock-60]")  # yellow: accept within 30 minutes
    admin.wait_for_selector("[data-notice=reminder]")
    assert admin.locator("[data-run-outdated]").count() == 0

    # Submit from the review page; the head is told, reviews and approves.
    admin.goto(f"{url}/handbooks/versions/{draft_id}/review")
    admin.locator("[data-submit-review]").click()
    admin.wait_for_url(re.compile(r"/handbooks/gas$"))
    head = tab("jjw_head")
    head.goto(f"{url}/notifications")
    head.locator(f'a[href="/handbooks/versions/{draft_id}/review"]').first.click()
    head.wait_for_selector("[data-compare][data-state=ready]", timeout=20_000)
    assert names["hb_admin"] in head.locator("[data-author]").inner_text()
    assert head.locator("#validation").get_attribute("data-validation") == "valid"
    head.locator("#comment").fill("同意，条件写法正确")
    head.locator("[data-approve]").click()
    head.wait_for_url(re.compile(r"/handbooks/gas$"))
    assert head.dialogs == ["发布此版本？新案件将立即按此版本运行。"]  # asked before publishing
    assert database(lambda: db.session.get(HandbookVersion, draft_id).status) == \
        VersionStatus.PUBLISHED

    # A new case starts on the new version.
    case_no = live_server["open_case"]()
    assert database(lambda: db.session.scalar(select(Case.handbook_version_id).where(
        Case.case_no == case_no))) == draft_id

    # The case that ran on the old version moves to the new one after its dry run.
    assert database(lambda: db.session.scalar(select(Case.handbook_version_id).where(
        Case.case_no == old_case))) != draft_id
    admin.goto(f"{url}/handbooks/gas/migration")
    row = admin.locator(f"tr[data-case='{old_case}']")
    row.get_by_role("link", name="预演详情").click()
    admin.wait_for_selector("[data-verdict=can-move]")
    admin.click("[data-action=migrate]")
    admin.wait_for_selector("[data-migration-batch][data-status=finished]", timeout=20_000)
    assert admin.dialogs[-1].startswith("将此案件迁移到新版本")
    assert admin.locator(f"tr[data-case='{old_case}']").get_attribute(
        "data-outcome") == "migrated"
    assert database(lambda: db.session.scalar(select(Case.handbook_version_id).where(
        Case.case_no == old_case))) == draft_id
    assert time.monotonic() - started < 240


# Two processes, each on its own diagram, with a vendor namespace (as Trisotech exports).
TWO_DIAGRAMS = (Path(__file__).parent / "files" / "two_diagrams.bpmn").read_text(encoding="utf-8")


def test_pasted_file_with_two_diagrams_pins_every_problem(tab: Any, live_server: dict[str, Any],
                                                         screenshot: Any) -> None:
    """Problems in the shape the checks give them: on a flow, on a child id (a condition) via
    its drawn parent, on an element of the other diagram (switch to it), on the whole file."""
    started = time.monotonic()
    page = tab("hb_admin")
    open_workspace(page, f"{live_server['url']}/designer/handbooks/elevator")
    page.locator("[data-designer-paste]").click()
    page.locator("#paste-text").fill(TWO_DIAGRAMS)
    page.get_by_role("button", name="导入", exact=True).click()
    page.wait_for_selector("[data-designer][data-imported]")
    warnings = page.locator("[data-import-warnings] li").all_inner_texts()
    assert any("Process_one, Process_two" in w for w in warnings), warnings
    assert any("trisotech" in w for w in warnings), warnings
    switch = page.locator("[data-diagram-switch]")
    assert switch.is_visible()
    assert switch.locator("option").all_inner_texts() == ["1. 主流程", "2. 被调用流程"]
    name = page.locator("[data-designer]").get_attribute("data-file-name")
    page.evaluate("""(file) => window.designer.problems.show([
      {file, element: 'Flow_one', child: 'Condition_one', message: '条件无法解析'},
      {file, element: 'Task_two', message: '第二个图的问题'},
      {file, element: null, message: '整个文件的问题'},
    ])""", name)
    assert page.locator('g.djs-connection[data-element-id="Flow_one"].has-problem').count() == 1
    # The path of the flow is drawn red (not the arrow's <defs>).
    stroke = page.evaluate("""() => getComputedStyle(document.querySelector(
      'g.djs-connection[data-element-id="Flow_one"] .djs-visual > path')).stroke""")
    assert stroke == "rgb(179, 38, 30)", stroke
    items = page.locator("[data-designer-problems] li[data-source=server]")
    assert items.nth(2).inner_text().count("整个文件") >= 1
    items.nth(1).locator("button.link").click()
    page.wait_for_function("() => window.designer.modeler.get('selection').get()"
                           ".map((e) => e.id).join() === 'Task_two'")
    assert switch.locator("select").input_value() == "Diagram_two"
    assert page.locator("[data-import-warnings] li").count() == len(warnings)  # still listed
    assert page.locator('g.djs-shape[data-element-id="Task_two"].has-problem').count() == 1
    screenshot(page, "workspace-other-diagram")
    # A new check clears the old markers: its own problems replace them.
    page.locator("[data-designer-validate]").click()
    page.wait_for_selector("[data-designer][data-validation=invalid]")
    assert page.locator('g.djs-shape[data-element-id="Task_two"].has-problem').count() == 0
    assert "第二个图的问题" not in page.locator("[data-designer-problems]").inner_text()
    # A file binding camunda: to another namespace still exports (the prefix is renamed).
    other = TWO_DIAGRAMS.replace(
        'xmlns:trisotech="http://www.trisotech.com/2015/triso/modeling"',
        'xmlns:camunda="http://example.com/not-camunda"').replace("trisotech:", "camunda:")
    page.evaluate("() => { document.querySelector('[data-designer-status]').textContent = ''; }")
    page.locator("[data-designer-paste]").click()
    page.locator("#paste-text").fill(other)
    page.get_by_role("button", name="导入", exact=True).click()
    page.wait_for_function("() => document.querySelector('[data-designer-status]')"
                           ".textContent.includes('已导入')")
    exported = page.evaluate("() => window.designer.exportXML()")
    assert 'xmlns:camunda_other="http://example.com/not-camunda"' in exported
    assert 'camunda_other:version="1"' in exported
    page.evaluate("() => { window.designer.dirty = false; }")
    assert time.monotonic() - started < 60


def test_importing_a_file_with_a_new_name_adds_it_beside_the_others(
        tab: Any, live_server: dict[str, Any], database: Database, tmp_path: Path) -> None:
    url = live_server["url"]
    upload = tmp_path / "gas_notice.bpmn"
    upload.write_text(TWO_DIAGRAMS, encoding="utf-8")
    page = tab("hb_admin")
    open_workspace(page, f"{url}/designer/handbooks/gas")
    opened = gas_file(database)
    page.locator("[data-designer-import]").set_input_files(str(upload))
    page.wait_for_selector("[data-designer][data-imported]")
    # The new file is opened under its own name; the handbook's file stays as it was.
    assert page.locator("[data-designer]").get_attribute("data-file-name") == \
        "bpmn/gas_notice.bpmn"
    assert page.locator("#file-pick").input_value() == "bpmn/gas_notice.bpmn"
    page.locator("[data-designer-note]").fill("增加通知流程文件")
    page.locator("[data-designer-save]").click()
    page.wait_for_selector("[data-designer][data-save=saved]")
    draft_id = int(page.locator("[data-designer]").get_attribute("data-draft-id"))
    files = database(lambda: dict(db.session.get(HandbookVersion, draft_id).files))
    assert files[GAS] == opened and "bpmn/gas_notice.bpmn" in files
    # Importing a file named as the open one replaces it, and only it.
    again = tmp_path / "scenario_gas.bpmn"
    again.write_text(re.sub(r'(<bpmn:sequenceFlow id="Flow_major_risk_to_call_expert"[^>]*?'
                            r'name=")[^"]*"', r'\1再次导入"', opened), encoding="utf-8")
    open_workspace(page, f"{url}/designer/handbooks/gas?file={GAS}")
    page.locator("[data-designer-import]").set_input_files(str(again))
    page.wait_for_selector("[data-designer][data-imported]")
    assert page.locator("[data-designer]").get_attribute("data-file-name") == GAS
    page.locator("[data-designer-save]").click()
    page.wait_for_selector("[data-designer][data-save=saved]")
    files = database(lambda: dict(db.session.get(HandbookVersion, draft_id).files))
    assert "再次导入" in files[GAS] and "bpmn/gas_notice.bpmn" in files
