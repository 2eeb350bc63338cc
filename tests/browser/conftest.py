"""A live server on its own SQLite file (real commits) and headless Debian Chromium."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.models import ApiKey, Case, CaseTask, MonitoringPoint, User
from app.services import api_keys, cases, demo, org
from app.services.intake import AlertIn, ingest
from helpers import assert_quiet_console, watch_console

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}

# When the browser leaves a page while a static file is still being sent, Werkzeug's
# development server drops the connection without closing the file it was sending. That is
# the test server's housekeeping (production serves through gunicorn), not the application's.
_DROPPED_SEND = (
    "ignore:unclosed file <_io.BufferedReader:ResourceWarning",
    r"ignore:Exception ignored in. <_io\.(FileIO|BufferedReader):"
    "pytest.PytestUnraisableExceptionWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            for rule in _DROPPED_SEND:
                item.add_marker(pytest.mark.filterwarnings(rule))


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The server, the demo accounts with their passwords, and `open_case(...)`, which
    reports an alarm and has it confirmed so that it waits in the responders' inbox."""
    db_file = tmp_path_factory.mktemp("live") / "live.db"
    app = create_app(DATABASE_URL=f"sqlite:///{db_file}",
                     SECRET_KEY="browser-test-secret-0123456789")
    with app.app_context():
        upgrade()
        org.load_org()
        now = app.extensions["clock"]()
        accounts = {a.username: a.password for a in demo.load_demo_accounts(now=now)}
        demo.publish_demo_handbooks(now=now)
        sysadmin = db.session.scalar(select(User).where(User.username == "sysadmin"))
        api_keys.issue(sysadmin, name="演示物联感知", source_type="iot", scenarios=["gas"],
                       now=now, known_scenarios={"gas"})
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "accounts": accounts,
           "open_case": lambda **kw: _confirmed_case(app, **kw)}
    server.shutdown()
    thread.join(timeout=5)
    with app.app_context():
        db.engine.dispose()


def _confirmed_case(app: Any, *, value: float = 30.0, town: str = "town.02",
                    assess: bool = True) -> str:
    """A gas alarm at a new point in `town`, confirmed by the scenario's administrator
    (left waiting for the assessment with `assess=False`)."""
    with app.app_context():
        now = app.extensions["clock"]()
        number = db.session.scalar(select(func.count()).select_from(MonitoringPoint)) + 1
        code = f"GAS-DEMO-{number:04d}"
        db.session.add(MonitoringPoint(code=code, name=f"演示窨井{number}", scenario="gas",
                                       node=org.node_by_code(town), lat=31.23, lon=121.5))
        outcome = ingest(db.session.scalar(select(ApiKey)), AlertIn(
            scenario="gas", indicator="ch4_lel", point_code=code, value=value,
            observed_at=now), now=now)
        db.session.commit()
        if not assess:
            return str(outcome.case_no)
        case = db.session.scalar(select(Case).where(Case.case_no == outcome.case_no))
        task = db.session.scalar(select(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.status == "ready"))
        admin = db.session.scalar(select(User).where(User.username == "jjw_admin"))
        cases.complete(admin, task.id, {"verdict": "confirmed", "assessment_note": "现场视频确认"},
                       now=now)
        db.session.commit()
        return str(outcome.case_no)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's package `chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture(params=list(SIZES))
def page(request: pytest.FixtureRequest, chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport=SIZES[request.param], locale="zh-CN")
    p = context.new_page()
    p.size_name = request.param
    watch_console(p)
    yield p
    try:
        assert_quiet_console(p)
    finally:
        context.close()


@pytest.fixture
def screenshot() -> Any:
    """Saves full-page screenshots under test-artifacts/screenshots for review."""

    def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{page.size_name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
