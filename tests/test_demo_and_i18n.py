"""Demo accounts log in and see their home page; every visible string has a translation."""

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po
from sqlalchemy import func, select

from app.extensions import db
from app.jobs import heartbeat
from app.models import Heartbeat, Role, User
from app.services import demo
from app.web.labels import ROLE_LABELS
from helpers import Browser

ROOT = Path(__file__).resolve().parent.parent


def test_every_demo_account_logs_in_and_sees_its_role(app, dbconn, clock) -> None:
    with app.app_context():
        created = demo.load_demo_accounts(now=clock())
        db.session.commit()
        again = demo.load_demo_accounts(now=clock())
        assert all(a.password is None for a in again)
        assert db.session.scalar(select(func.count()).select_from(User)) == len(created)
        roles = {a.role for u in db.session.scalars(select(User)) for a in u.assignments}
        assert roles == set(Role)  # at least one account per role
        labels = {r: str(ROLE_LABELS[r]) for r in Role}
    for account in created:
        browser = Browser(app.test_client())
        assert browser.login(account.username, account.password).status_code == 302
        page = browser.text("/")
        assert account.display_name in page
        for label in account.roles:
            assert f'data-role="{label.split("@")[0]}"' in page
    assert "分管责任人" in labels.values()


def test_seed_demo_without_a_tree_says_what_to_do(app, dbconn) -> None:
    from app.models import PlatformNode

    with app.app_context():
        db.session.query(PlatformNode).delete()  # inside the test transaction only
        db.session.flush()
        result = app.test_cli_runner().invoke(args=["seed", "demo"])
    assert result.exit_code == 1
    assert "run `flask seed org` first" in result.output


def test_scheduler_heartbeat_is_shown_to_tech_staff(app, as_role, clock) -> None:
    heartbeat(app)
    clock.advance(seconds=42)
    page = as_role(Role.TECH_ADMIN, node="district").text("/system/status")
    assert "scheduler" in page and ">42<" in page
    health = app.test_client().get("/api/v1/health").get_json()
    assert health["status"] == "ok" and health["scheduler_age_seconds"] == 42.0
    with app.app_context():
        assert db.session.get(Heartbeat, "scheduler") is not None


def test_every_user_visible_string_is_translated(tmp_path) -> None:
    pot = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F",
                    str(ROOT / "babel.cfg"), "-k", "_l", "-o", str(pot), "--no-location",
                    str(ROOT)], check=True, capture_output=True, cwd=ROOT)
    with pot.open("rb") as fh:
        wanted = {m.id for m in read_po(fh) if m.id}
    with (ROOT / "app/translations/zh/LC_MESSAGES/messages.po").open("rb") as fh:
        have = {m.id: m.string for m in read_po(fh) if m.id}
    missing = sorted(str(m) for m in wanted if not have.get(m))
    assert not missing, f"untranslated (run `make i18n` and fill in zh): {missing}"
