"""In Chromium: a draft's test run whose reminder timer fires when its virtual clock moves,
then, once the draft is published, an old case moved to it after its dry run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import Case, HandbookVersion, MonitoringPoint, User, VersionStatus
from app.services import api_keys, handbooks, org
from app.services.handbook_diff import content_hash
from app.services.intake import AlertIn, ingest
from helpers import assert_quiet_console, watch_console

pytestmark = pytest.mark.browser

KEY = "bridge"
BPMN = f"bpmn/scenario_{KEY}.bpmn"
DESKTOP = {"width": 1280, "height": 860}


def _app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    (db_file,) = tmp_path_factory.getbasetemp().glob("live[0-9]*/live.db")
    return create_app(DATABASE_URL=f"sqlite:///{db_file}",
                      SECRET_KEY="browser-test-secret-0123456789")


@pytest.fixture(scope="module")
def setting(live_server: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Any]]:
    """A running bridge case on the published version, and a draft that renames a step."""
    app = _app(tmp_path_factory)
    with app.app_context():
        now = app.extensions["clock"]()
        sysadmin = db.session.scalar(select(User).where(User.username == "sysadmin"))
        issued = api_keys.issue(sysadmin, name="桥梁监测", source_type="iot", scenarios=[KEY],
                                now=now, known_scenarios={KEY})
        number = db.session.scalar(select(func.count()).select_from(MonitoringPoint)) + 1
        code = f"BRIDGE-DEMO-{number:04d}"
        db.session.add(MonitoringPoint(code=code, name="演示桥梁", scenario=KEY,
                                       node=org.node_by_code("town.02"), lat=31.23, lon=121.5))
        db.session.flush()
        outcome = ingest(issued.key, AlertIn(scenario=KEY, indicator="strain_ratio_pct",
                                             point_code=code, value=85.0, observed_at=now),
                         now=now)
        current = handbooks.published_version(KEY)
        files = dict(current.files)
        files[BPMN] = files[BPMN].replace('name="到场处置"', 'name="到场处置（新）"')
        draft = HandbookVersion(
            handbook_key=KEY, node_id=current.node_id, number=current.number + 1,
            status=VersionStatus.DRAFT, content_hash=content_hash(files),
            process_id=current.process_id, files=files, change_note="改名",
            diff_summary={}, author_name="hb_admin", created_at=now)
        db.session.add(draft)
        db.session.commit()
        found = {"app": app, "case_no": outcome.case_no, "draft": draft.id}
        db.session.remove()  # no transaction left open on the live server's database
    yield found
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def designer(chromium: Any, live_server: dict[str, Any]) -> Iterator[Any]:
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    page.size_name = "desktop"
    watch_console(page)
    url = live_server["url"]
    page.goto(f"{url}/login")
    page.get_by_label("用户名").fill("hb_admin")
    page.get_by_label("密码").fill(live_server["accounts"]["hb_admin"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{url}/")
    yield page
    try:
        assert_quiet_console(page)
    finally:
        context.close()


def test_a_test_run_fires_its_reminder_on_the_virtual_clock_then_cases_move(
        designer: Any, live_server: dict[str, Any], setting: dict[str, Any],
        screenshot: Any) -> None:
    url, page = live_server["url"], designer
    page.goto(f"{url}/designer/versions/{setting['draft']}/test-runs")
    page.select_option("#run-item", "BRIDGE-STRAIN")
    page.select_option("#run-level", "yellow")
    page.fill("#run-note", "黄色预警接单超时")
    page.click("[data-action=start-run]")
    page.wait_for_selector("[data-element=Activity_assessment]")
    form = page.locator("form[data-element=Activity_assessment]")
    form.locator("[name=verdict]").select_option("confirmed")
    form.locator("[name=major_risk][value=false]").check()
    form.locator("[name=assessment_note]").fill("视频确认桥梁应变超限")
    form.locator("[data-action=complete]").click()
    page.wait_for_selector("form[data-element=Activity_accept]")
    assert page.locator("[data-notice=reminder]").count() == 0
    page.click("[data-action=clock-60]")  # yellow: accept within 30 minutes
    page.wait_for_selector("[data-notice=reminder]")
    assert "试运行" in page.locator("#timeline").inner_text()
    page.wait_for_selector("#diagram .bpmn-diagram[data-state=ready]", timeout=20_000)
    assert page.locator("#diagram .djs-element.done").count() > 3
    screenshot(page, "test-run-reminder")

    # The draft is published through review; the old case moves to it after its dry run.
    app = setting["app"]
    with app.app_context():
        now = app.extensions["clock"]()
        author = db.session.scalar(select(User).where(User.username == "hb_admin"))
        head = db.session.scalar(select(User).where(User.username == "jjw_head"))
        handbooks.submit_for_review(author, setting["draft"], note="改名", now=now)
        handbooks.approve(head, setting["draft"], comment="同意", now=now)
        db.session.commit()
        case_id = db.session.scalar(select(Case.id).where(Case.case_no == setting["case_no"]))
        db.session.remove()
    page.goto(f"{url}/handbooks/{KEY}/migration")
    row = page.locator(f"tr[data-case='{setting['case_no']}']")
    row.get_by_role("link", name="预演详情").click()
    page.wait_for_selector("[data-verdict=can-move]")
    assert "保持不变" in page.locator(".dry-run").inner_text()
    page.click("[data-action=migrate]")
    page.wait_for_selector("[data-migration-batch][data-status=finished]", timeout=20_000)
    assert page.locator(f"tr[data-case='{setting['case_no']}']").get_attribute(
        "data-outcome") == "migrated"
    assert page.locator("progress").evaluate("bar => bar.value") == 1
    screenshot(page, "cases-migrated")
    with app.app_context():
        assert db.session.get(Case, case_id).handbook_version_id == setting["draft"]
