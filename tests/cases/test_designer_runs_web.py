"""The pages of test runs and of moving running cases: forms with field-level messages, the
batch answered as JSON step by step, refusals for people outside the handbook."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.extensions import db
from app.models import Case, HandbookTestRun, Role
from cases_fixtures import RENAMED, draft_of, publish_edit

GAS_ITEM = "GAS-CH4-MANHOLE"


def _draft(app, clock) -> int:
    with app.app_context():
        version_id = draft_of("gas", clock())
        db.session.commit()
        return version_id


def test_a_test_run_in_the_browser_pages(app, published, clock, as_role):
    version_id = _draft(app, clock)
    designer = as_role((Role.BUSINESS_ADMIN, "scenario.gas"))
    page = designer.text(f"/designer/versions/{version_id}/test-runs")
    assert 'data-action="start-run"' in page
    bad = designer.post(f"/designer/versions/{version_id}/test-runs",
                        {"item_code": GAS_ITEM, "level": "yellow", "value": "abc",
                         "town": "town.02"})
    assert bad.status_code == 422
    assert 'id="value-error"' in bad.get_data(as_text=True)
    started = designer.post(f"/designer/versions/{version_id}/test-runs",
                            {"item_code": GAS_ITEM, "level": "yellow", "value": "",
                             "town": "town.02", "note": "黄色演练"})
    assert started.status_code == 302
    run_url = started.location
    run_id = int(run_url.rsplit("/", 1)[1])
    page = designer.text(run_url)
    assert 'data-element="Activity_assessment"' in page and "bpmn-diagram" in page
    task_id = re.search(r'/tasks/(\d+)"', page).group(1)
    wrong = designer.post(f"{run_url}/tasks/{task_id}", {"verdict": "maybe"})
    assert wrong.status_code == 422
    assert 'id="verdict-error"' in wrong.get_data(as_text=True)
    done = designer.post(f"{run_url}/tasks/{task_id}",
                         {"verdict": "confirmed", "major_risk": "false",
                          "assessment_note": "视频确认"})
    assert done.status_code == 302
    assert 'data-element="Activity_accept"' in designer.text(run_url)
    assert designer.post(f"{run_url}/clock", {"minutes": "45"}).status_code == 302
    page = designer.text(run_url)
    assert 'data-notice="reminder"' in page
    assert designer.post(f"{run_url}/clock", {"minutes": "-3"}).status_code == 422
    # Anyone who reads handbooks reads the runs; only the handbook's designers act on them.
    reader = as_role((Role.RESPONDER, "town.02"))
    assert reader.get(run_url).status_code == 200
    assert reader.post(f"{run_url}/clock", {"minutes": "5"}).status_code == 403
    outsider = as_role((Role.BUSINESS_ADMIN, "scenario.elevator"))
    assert outsider.post(f"{run_url}/delete").status_code == 403
    assert designer.post(f"{run_url}/delete").status_code == 302
    with app.app_context():
        assert db.session.get(HandbookTestRun, run_id) is None


def test_moving_cases_in_the_browser_pages(app, published, point, send, clock, as_role):
    numbers = []
    for i in range(2):
        point(f"GAS-MH-02{i}", "gas")
        numbers.append(send("gas", "ch4_lel", 30.0, f"GAS-MH-02{i}")["case_no"])
    target = publish_edit(app, clock, *RENAMED)
    designer = as_role((Role.BUSINESS_ADMIN, "scenario.gas"))
    page = designer.text("/handbooks/gas/migration")
    assert all(f'data-case="{n}"' in page for n in numbers)
    assert page.count('data-verdict="can-move"') == 2
    with app.app_context():
        ids = [db.session.scalar(select(Case.id).where(Case.case_no == n)) for n in numbers]
    assert 'data-verdict="can-move"' in designer.text(f"/handbooks/gas/migration/cases/{ids[0]}")
    assert designer.post("/handbooks/gas/migration", {}).status_code == 422
    started = designer.post("/handbooks/gas/migration", {"case": [str(i) for i in ids]})
    assert started.status_code == 302
    batch_url = started.location
    assert "data-migration-batch" in designer.text(batch_url)
    token = designer.csrf(batch_url)
    state = designer.client.post(f"{batch_url}/step", json={},
                                 headers={"X-CSRFToken": token}).get_json()
    assert (state["done"], state["total"], state["status"]) == (1, 2, "running")
    state = designer.client.post(f"{batch_url}/step", json={},
                                 headers={"X-CSRFToken": token}).get_json()
    assert state["status"] == "finished"
    assert {r["outcome"] for r in state["results"].values()} == {"migrated"}
    with app.app_context():
        assert {db.session.get(Case, i).handbook_version_id for i in ids} == {target}
    outsider = as_role((Role.BUSINESS_ADMIN, "scenario.elevator"))
    assert outsider.get("/handbooks/gas/migration").status_code == 403
    assert outsider.get(batch_url).status_code == 403
