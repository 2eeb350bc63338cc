"""The process designer is for the people who design handbooks: business administrators and
department heads, each for the handbooks of the nodes they hold the role on (handbook.design).
Everyone else can still read handbooks, but neither opens the designer nor runs its check."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import HandbookVersion, Role
from app.services import handbooks
from helpers import demo_role_nodes

DESIGNERS = {Role.BUSINESS_ADMIN, Role.DEPARTMENT_HEAD}
_BUNDLES: list[Any] = []


@pytest.fixture
def versions(app, dbconn, clock, monkeypatch) -> dict[str, int]:
    """Handbook key -> id of its first (draft) version."""
    if not _BUNDLES:
        _BUNDLES.extend(handbooks.collect_bundles())
    monkeypatch.setattr(handbooks, "collect_bundles", lambda root=None: list(_BUNDLES))
    with app.app_context():
        handbooks.deploy(author=None, now=clock())
        db.session.commit()
        return {v.handbook_key: v.id for v in db.session.scalars(select(HandbookVersion))}


def _file(key: str) -> str:
    return f"bpmn/scenario_{key}.bpmn"


def _validate(browser: Any, versions: dict[str, int], key: str) -> Any:
    token = browser.csrf("/")
    return browser.client.post("/designer/validate", headers={"X-CSRFToken": token}, json={
        "name": _file(key), "xml": "<definitions/>", "version_id": versions[key]})


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_only_designers_open_the_designer_and_its_check(app, versions, as_role, role) -> None:
    browser = as_role((role, demo_role_nodes()[role]), locale="en")
    home = browser.text("/")
    index = browser.get("/designer/")
    # The demo's first business administrator and department head own flood and typhoon.
    check = _validate(browser, versions, "flood_typhoon")
    modeler = browser.get(f"/designer/versions/{versions['flood_typhoon']}/"
                          f"{_file('flood_typhoon')}")
    if role in DESIGNERS:
        assert index.status_code == 200
        assert 'data-nav="designer"' in home
        assert check.status_code == 200 and modeler.status_code == 200
    else:
        assert index.status_code == 403, role
        assert check.status_code == 403 and check.get_json()["code"] == "forbidden"
        assert modeler.status_code == 403
        assert 'data-nav="designer"' not in home


def test_a_designer_works_on_the_handbooks_of_their_own_line(app, versions, as_role) -> None:
    head = as_role((Role.DEPARTMENT_HEAD, "industry.construction"), locale="en")  # gas, ...
    index = head.text("/designer/")
    assert 'data-key="gas"' in index and 'data-key="flood_typhoon"' not in index
    assert head.get(f"/designer/versions/{versions['gas']}/{_file('gas')}").status_code == 200
    other = f"/designer/versions/{versions['flood_typhoon']}/{_file('flood_typhoon')}"
    assert head.get(other).status_code == 403
    checked = _validate(head, versions, "gas")
    assert checked.status_code == 200 and checked.get_json()["valid"] is False
    refused = _validate(head, versions, "flood_typhoon")
    assert refused.status_code == 403 and refused.get_json()["code"] == "forbidden"


def test_the_district_business_administrator_designs_every_handbook(app, versions,
                                                                   as_role) -> None:
    admin = as_role((Role.BUSINESS_ADMIN, "district"), locale="en")
    index = admin.text("/designer/")
    assert all(f'data-key="{key}"' in index for key in versions)


def test_readers_still_read_handbooks_without_management_actions(app, versions,
                                                                 as_role) -> None:
    responder = as_role((Role.RESPONDER, "town.02"), locale="en")
    page = responder.text("/handbooks/gas")
    assert responder.get("/handbooks/").status_code == 200
    assert "Send for review" not in page and "Approve and publish" not in page
    assert "/designer/" not in page
    preview = responder.get(f"/designer/preview/{versions['gas']}")
    assert preview.status_code == 200  # a read-only diagram, as on a case page
    assert 'href="/designer/"' not in preview.get_data(as_text=True)
