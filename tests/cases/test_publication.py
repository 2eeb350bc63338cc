"""Weather warning publication: 区气象局 drafts, 应急管理局 verifies a district-wide warning,
publishing reaches the running flood cases and is recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Case, CaseEvent, CaseTask, Notification, Role, User
from app.services import case_engine, cases, publications
from app.services.errors import Forbidden
from cases_fixtures import fill_form


def _ready(case_id: int) -> CaseTask:
    task = db.session.scalar(select(CaseTask).where(CaseTask.case_id == case_id,
                                                    CaseTask.status == "ready"))
    assert task is not None
    return task


def _complete(user: User, task: CaseTask, given: dict, clock) -> None:
    case = db.session.get(Case, task.case_id)
    fields = case_engine.load(case).compiled.form_fields(task.process_id, task.element_id)
    cases.complete(user, task.id, fill_form(fields, given), now=clock())
    db.session.commit()


def test_a_district_wide_warning_is_verified_and_reaches_flood_cases(
        app, published, point, send, make_user, clock):
    point("FLOOD-P-1", "flood_typhoon")
    flood = send("flood_typhoon", "rainfall_1h_mm", 55.0, "FLOOD-P-1")
    assert flood["disposition"] == "opened"
    drafter = make_user((Role.BUSINESS_ADMIN, "industry.meteorology"))["id"]
    verifier = make_user((Role.BUSINESS_ADMIN, "industry.emergency"))["id"]
    outsider = make_user((Role.BUSINESS_ADMIN, "scenario.gas"))["id"]
    with app.app_context():
        with pytest.raises(Forbidden):
            publications.start(db.session.get(User, outsider), now=clock())
        publication = publications.start(db.session.get(User, drafter), now=clock())
        db.session.commit()
        assert publication.case_no.startswith("QX-")
        draft = _ready(publication.id)
        assert draft.element_id == "Activity_draft_warning"
        _complete(db.session.get(User, drafter), draft,
                  {"warning_type": "rainstorm", "level": "orange", "area": "district_wide",
                   "content": "预计未来3小时浦东全区有暴雨，请做好防范。",
                   "effective_at": "2026-07-26T10:00:00+08:00",
                   "effective_until": "2026-07-26T16:00:00+08:00"}, clock)
        verify = _ready(publication.id)
        assert verify.element_id == "Activity_verify_warning"
        with pytest.raises(Forbidden):
            _complete(db.session.get(User, drafter), verify, {"verified": "approve"}, clock)
        db.session.rollback()
        _complete(db.session.get(User, verifier), verify, {"verified": "approve"}, clock)
        publication = db.session.get(Case, publication.id)
        assert publication.status == "closed"
        broadcast = db.session.scalar(select(CaseEvent).where(
            CaseEvent.case_id == publication.id, CaseEvent.kind == "broadcast"))
        assert broadcast is not None and broadcast.data["cases"] == [flood["case_no"]]
        target = db.session.scalar(select(Case).where(Case.case_no == flood["case_no"]))
        kinds = db.session.scalars(select(Notification.kind).where(
            Notification.case_id == target.id)).all()
        assert "weather_warning" in kinds


def test_the_meteorology_bureau_starts_a_warning_from_the_operations_page(
        app, published, as_role):
    drafter = as_role(Role.BUSINESS_ADMIN, node="industry.meteorology")
    page = drafter.text("/operations/")
    assert "起草气象预警" in page
    response = drafter.post("/operations/publications")
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    form = drafter.text(response.headers["Location"])
    assert "warning_type" in form
    other = as_role(Role.BUSINESS_ADMIN, node="scenario.gas")
    assert "起草气象预警" not in other.text("/operations/")
    assert other.post("/operations/publications").status_code == 403
