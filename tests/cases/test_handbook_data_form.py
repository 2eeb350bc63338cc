"""The handbook data editor: a draft's scenario data as a form, each problem on its field,
only a valid document saved (audited); inferred values confirmed one by one at review, and a
version with one left unconfirmed is not approved."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditRecord, HandbookVersion, Role, User, VersionStatus
from app.services import handbook_data_form as data_form
from app.services import handbooks
from app.services.errors import Conflict, Forbidden
from cases_fixtures import draft_of

DATA = "handbooks/scenarios/gas.json"


@pytest.fixture
def draft(app, published, clock) -> int:
    with app.app_context():
        version_id = draft_of("gas", clock())
        db.session.commit()
        return version_id


@pytest.fixture
def designer(as_role) -> Any:
    return as_role((Role.BUSINESS_ADMIN, "scenario.gas"), username="gas.designer")


def _form(page: str) -> dict[str, str]:
    """The text fields of the data form as the browser would post them."""
    fields = dict(re.findall(r'<input id="d-[^"]*" name="([^"]+)" value="([^"]*)"', page))
    import html

    return {k: html.unescape(v) for k, v in fields.items()}


def _flags(page: str) -> list[str]:
    return re.findall(r'name="_flag" value="([^"]+)" checked', page)


def _post(browser: Any, version_id: int, changes: dict[str, str], **extra: Any) -> Any:
    url = f"/designer/versions/{version_id}/data"
    page = browser.text(url)
    body: dict[str, Any] = {**_form(page), **changes, "_flag": _flags(page),
                            "_base": re.search(r'name="_base" value="([0-9a-f]+)"',
                                               page).group(1), "_note": "调整阈值"}
    body.update(extra)
    return browser.post(url, body)


def _data(app, version_id: int) -> dict[str, Any]:
    with app.app_context():
        loaded: dict[str, Any] = json.loads(db.session.get(HandbookVersion, version_id)
                                            .files[DATA])
        return loaded


def test_the_form_shows_every_value_and_marks_the_inferred_ones(app, draft, designer):
    page = designer.text(f"/designer/versions/{draft}/data")
    assert 'name="time_limits.yellow.accept" value="PT30M"' in page
    assert 'data-inferred="warning_items.0.thresholds.yellow"' in page
    assert 'data-action="save-data"' in page


def test_a_valid_change_is_saved_into_the_draft_and_audited(app, draft, designer):
    before = _data(app, draft)
    response = _post(designer, draft, {"warning_items.0.thresholds.yellow.value": "20"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    after = _data(app, draft)
    assert after["warning_items"][0]["thresholds"]["yellow"]["value"] == 20
    after["warning_items"][0]["thresholds"]["yellow"]["value"] = 25
    assert after == before  # nothing else moved, types kept
    with app.app_context():
        record = db.session.scalar(select(AuditRecord).where(
            AuditRecord.action == "handbook.data_edit"))
        assert record.after["changed"] == ["warning_items.0.thresholds.yellow.value"]


@pytest.mark.parametrize(("field", "value", "where"), [
    ("time_limits.yellow.accept", "30 minutes", "time_limits.yellow.accept"),
    ("warning_items.0.thresholds.yellow.value", "abc", "warning_items.0.thresholds.yellow.value"),
    ("warning_items.0.thresholds.yellow.value", "200", "warning_items.0.thresholds"),
    ("warning_items.0.source_types", "satellite", "warning_items.0.source_types"),
])
def test_each_problem_is_shown_on_its_field_and_nothing_is_saved(app, draft, designer, field,
                                                                 value, where):
    before = _data(app, draft)
    response = _post(designer, draft, {field: value})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="e-{where.replace(".", "-")}"' in page, page[:3000]
    assert f'value="{value}"' in page  # what was typed stays in the field
    assert _data(app, draft) == before


def test_saving_over_a_changed_draft_is_refused(app, draft, designer):
    response = _post(designer, draft, {"time_limits.yellow.accept": "PT20M"},
                     _base="0" * 64)
    assert response.status_code == 409
    assert _data(app, draft)["time_limits"]["yellow"]["accept"] == "PT30M"


def test_a_version_in_review_or_published_is_not_edited(app, published, designer):
    with app.app_context():
        version_id = handbooks.published_version("gas").id
    page = designer.text(f"/designer/versions/{version_id}/data")
    assert 'data-action="save-data"' not in page
    assert _post(designer, version_id, {}).status_code == 409


def test_changed_inferred_values_are_confirmed_one_by_one_before_approval(
        app, draft, designer, clock, make_user, as_role):
    assert _post(designer, draft, {"warning_items.0.thresholds.yellow.value": "20",
                                   "time_limits.yellow.accept": "PT20M"}).status_code == 302
    head = make_user((Role.DEPARTMENT_HEAD, "industry.construction"), username="gas.head")
    with app.app_context():
        author = db.session.scalar(select(User).where(User.username == "gas.designer"))
        handbooks.submit_for_review(author, draft, note="阈值调整", now=clock())
        db.session.commit()
        version = db.session.get(HandbookVersion, draft)
        assert version.status == VersionStatus.IN_REVIEW
        assert data_form.unconfirmed(version) == ["warning_items.0.thresholds.yellow",
                                                  "time_limits.yellow"]
        reviewer = db.session.get(User, head["id"])
        with pytest.raises(Conflict) as refused:
            handbooks.approve(reviewer, draft, comment="同意", now=clock())
        assert refused.value.code == "unconfirmed_inferred_values"
        db.session.rollback()
        with pytest.raises(Forbidden):
            data_form.confirm(author, draft, "time_limits.yellow", now=clock())
    browser = as_role((Role.DEPARTMENT_HEAD, "industry.construction"))
    page = browser.text(f"/designer/versions/{draft}/inferred")
    assert 'data-waiting="2"' in page and 'data-action="confirm"' in page
    for path in ("warning_items.0.thresholds.yellow", "time_limits.yellow"):
        assert browser.post(f"/designer/versions/{draft}/inferred",
                            {"path": path}).status_code == 302
    assert 'data-waiting="0"' in browser.text(f"/designer/versions/{draft}/inferred")
    assert browser.post(f"/designer/versions/{draft}/inferred",
                        {"path": "no.such.path"}).status_code == 404
    with app.app_context():
        reviewer = db.session.get(User, head["id"])
        handbooks.approve(reviewer, draft, comment="同意", now=clock())
        db.session.commit()
        assert db.session.get(HandbookVersion, draft).status == VersionStatus.PUBLISHED


def _doc_field(page: str) -> str:
    import html

    return html.unescape(re.search(r"name=\"_doc\" value='([^']*)'", page).group(1))


def test_entries_are_added_and_removed_before_saving(app, draft, designer):
    url = f"/designer/versions/{draft}/data"
    page = designer.text(url)
    body: dict[str, Any] = {**_form(page), "_flag": _flags(page), "_doc": _doc_field(page),
                            "_op": "add:weather_warnings"}
    added = designer.post(url, body)
    assert added.status_code == 200
    page = added.get_data(as_text=True)
    assert 'name="weather_warnings.2.type" value="cold_wave"' in page  # a copy to edit
    assert _data(app, draft)["weather_warnings"] == _data(app, draft)["weather_warnings"][:2]
    body = {**_form(page), "_flag": _flags(page), "_doc": _doc_field(page), "_op": "save",
            "_base": re.search(r'name="_base" value="([0-9a-f]+)"', page).group(1)}
    duplicate = designer.post(url, body)
    assert duplicate.status_code == 422  # two entries of the same type
    assert 'id="e-weather_warnings-2-type"' in duplicate.get_data(as_text=True)
    body["weather_warnings.2.type"] = "rainstorm"
    assert designer.post(url, body).status_code == 302
    assert [w["type"] for w in _data(app, draft)["weather_warnings"]] == [
        "typhoon", "cold_wave", "rainstorm"]
    page = designer.text(url)
    body = {**_form(page), "_flag": _flags(page), "_doc": _doc_field(page),
            "_op": "remove:weather_warnings.0"}
    removed = designer.post(url, body).get_data(as_text=True)
    body = {**_form(removed), "_flag": _flags(removed), "_doc": _doc_field(removed),
            "_op": "save", "_base": re.search(r'name="_base" value="([0-9a-f]+)"',
                                              removed).group(1)}
    assert designer.post(url, body).status_code == 302
    assert [w["type"] for w in _data(app, draft)["weather_warnings"]] == [
        "cold_wave", "rainstorm"]
    assert designer.post(url, {**body, "_op": "remove:nowhere.3"}).status_code == 422
