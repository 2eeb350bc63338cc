"""Account administration through the pages, and its audit trail."""

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from app.extensions import db
from app.models import AuditRecord, Role, User
from app.services import audit, org


def _records(app, action: str) -> list[AuditRecord]:
    with app.app_context():
        rows = db.session.scalars(select(AuditRecord).where(AuditRecord.action == action)
                                  .order_by(AuditRecord.id)).all()
        db.session.expunge_all()
        return list(rows)


def _user(app, username: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        assert user is not None
        db.session.expunge_all()
        return user


def _node_id(app, code: str) -> int:
    with app.app_context():
        return org.node_by_code(code).id


def test_system_admin_opens_an_account_and_it_is_audited(app, as_role) -> None:
    admin = as_role(Role.SYSTEM_ADMIN, node="district")
    response = admin.post("/admin/users/new", {
        "username": "new.responder", "display_name": "新处置", "password": "Strong-pass-2026",
        "home_node": _node_id(app, "town.02"), "department": "city_ops", "phone": "13900000000"})
    assert response.status_code == 302
    created = _user(app, "new.responder")
    assert created.must_change_password and created.active
    [row] = _records(app, "account.open")
    assert row.actor_name == admin.account["username"]
    assert row.after["home_node"] == "town.02" and "password_hash" not in row.after
    assert row.before is None


@pytest.mark.parametrize("field, value, message", [
    ("username", "1bad name", "3-60 letters"),
    ("password", "weakpass", "至少 10 个字符。"),
    ("home_node", "not-a-number", "不是有效的整数。"),  # marshmallow's message, translated
    ("home_node", "999999", "平台节点不存在。"),
    ("department", "nowhere", "部门不存在。"),
    ("phone", "call me", "Digits, spaces, + and - only."),
])
def test_bad_account_input_is_shown_next_to_the_field(app, as_role, field, value, message):
    admin = as_role(Role.SYSTEM_ADMIN, node="district")
    form = {"username": "ok.name", "display_name": "名字", "password": "Strong-pass-2026",
            "home_node": _node_id(app, "town.02"), "department": "", "phone": ""}
    form[field] = value
    response = admin.post("/admin/users/new", form)
    assert response.status_code in (409, 422)
    page = response.get_data(as_text=True)
    assert message in page
    assert 'value="ok.name"' in page or field == "username"  # what was typed is kept
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "ok.name")) is None
    assert _records(app, "account.open") == []


def test_duplicate_user_name_is_a_conflict(app, as_role, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="taken")
    admin = as_role(Role.SYSTEM_ADMIN, node="district")
    response = admin.post("/admin/users/new", {
        "username": "TAKEN", "display_name": "x", "password": "Strong-pass-2026",
        "home_node": _node_id(app, "town.02")})
    assert response.status_code == 409
    assert "该用户名已被使用。" in response.get_data(as_text=True)


def test_change_and_deactivate_record_before_and_after(app, as_role, make_user) -> None:
    target = make_user((Role.RESPONDER, "town.02"), username="wei")
    admin = as_role(Role.SYSTEM_ADMIN, node="district")
    response = admin.post(f"/admin/users/{target['id']}", {
        "display_name": "卫新名", "home_node": _node_id(app, "town.22"), "department": "",
        "phone": "021-1234567"})
    assert response.status_code == 302
    [change] = _records(app, "account.change")
    assert change.before["display_name"] == "测试wei" and change.after["display_name"] == "卫新名"
    assert change.before["home_node"] == "town.02" and change.after["home_node"] == "town.22"

    missing_reason = admin.post(f"/admin/users/{target['id']}/active", {"active": "0"})
    assert missing_reason.status_code == 422
    assert "请填写原因。" in missing_reason.get_data(as_text=True)
    admin.post(f"/admin/users/{target['id']}/active", {"active": "0", "reason": "调离"})
    assert not _user(app, "wei").active
    [off] = _records(app, "account.deactivate")
    assert off.before["active"] is True and off.after["active"] is False
    assert off.after["reason"] == "调离"
    from helpers import Browser

    refused = Browser(app.test_client()).login("wei")
    assert refused.status_code == 401


def test_a_deactivated_user_is_logged_out_at_the_next_request(app, as_role) -> None:
    responder = as_role(Role.RESPONDER, node="town.02")
    admin = as_role(Role.SYSTEM_ADMIN, node="district")
    admin.post(f"/admin/users/{responder.account['id']}/active",
               {"active": "0", "reason": "离职"})
    assert responder.get("/").status_code == 302


def test_security_admin_assigns_and_revokes_roles(app, as_role, make_user) -> None:
    target = make_user((Role.RESPONDER, "town.02"), username="wei")
    security = as_role(Role.SECURITY_ADMIN, node="district")
    response = security.post(f"/admin/users/{target['id']}/roles", {
        "role": "BUSINESS_ADMIN", "node": _node_id(app, "scenario.gas")})
    assert response.status_code == 302
    [row] = _records(app, "role.assign")
    assert row.before["roles"] == ["responder@town.02"]
    assert row.after["roles"] == ["business_admin@scenario.gas", "responder@town.02"]
    with app.app_context():
        assignment_id = next(a.id for a in db.session.get(User, target["id"]).assignments
                             if a.role == Role.BUSINESS_ADMIN)
    security.post(f"/admin/users/{target['id']}/roles/{assignment_id}/revoke")
    [revoke] = _records(app, "role.revoke")
    assert revoke.after["roles"] == ["responder@town.02"]


def test_the_three_administrators_stay_separate(app, as_role, make_user) -> None:
    target = make_user((Role.SYSTEM_ADMIN, "district"), username="sys2")
    security = as_role(Role.SECURITY_ADMIN, node="district")
    response = security.post(f"/admin/users/{target['id']}/roles", {
        "role": "AUDIT_ADMIN", "node": _node_id(app, "district")})
    assert response.status_code == 409
    assert "三员分立" in response.get_data(as_text=True)
    own = security.post(f"/admin/users/{security.account['id']}/roles", {
        "role": "RESPONDER", "node": _node_id(app, "district")})
    assert own.status_code == 403
    assert "不能修改自己的角色。" in own.get_data(as_text=True)
    assert _records(app, "role.assign") == []


def test_tech_admin_manages_only_its_own_platform(app, as_role, make_user) -> None:
    inside = make_user((Role.RESPONDER, "scenario.gas"), username="gas.worker")
    outside = make_user((Role.RESPONDER, "scenario.flood_typhoon"), username="flood.worker")
    tech = as_role(Role.TECH_ADMIN, node="industry.construction")
    listing = tech.text("/admin/users")
    assert "gas.worker" in listing and "flood.worker" not in listing
    assert tech.get(f"/admin/users/{outside['id']}").status_code == 403
    refused = tech.post(f"/admin/users/{outside['id']}/active",
                        {"active": "0", "reason": "x"})
    assert refused.status_code == 403
    assert _user(app, "flood.worker").active
    # It cannot hand out one of the three administrator roles either.
    admin_role = tech.post(f"/admin/users/{inside['id']}/roles", {
        "role": "SYSTEM_ADMIN", "node": _node_id(app, "scenario.gas")})
    assert admin_role.status_code == 403
    ok = tech.post(f"/admin/users/{inside['id']}/roles", {
        "role": "BUSINESS_ADMIN", "node": _node_id(app, "scenario.gas")})
    assert ok.status_code == 302


def test_auditor_can_read_the_trail_but_not_change_accounts(app, as_role, make_user) -> None:
    target = make_user((Role.RESPONDER, "town.02"), username="wei")
    auditor = as_role(Role.AUDITOR, node="district")
    assert auditor.get("/admin/audit").status_code == 200
    for path, form in [(f"/admin/users/{target['id']}/active", {"active": "0", "reason": "x"}),
                       (f"/admin/users/{target['id']}/roles", {"role": "AUDITOR",
                                                               "node": "1"}),
                       (f"/admin/users/{target['id']}/unlock", {}),
                       ("/admin/users/new", {})]:
        response = auditor.post(path, form)
        assert response.status_code == 403, path
    assert _user(app, "wei").active


def test_unlock_and_reset_password(app, as_role, make_user, clock) -> None:
    from helpers import Browser

    target = make_user((Role.RESPONDER, "town.02"), username="wei")
    person = Browser(app.test_client())
    for _ in range(5):
        person.login("wei", "Wrong-pass-111")
    assert _user(app, "wei").locked_until is not None
    security = as_role(Role.SECURITY_ADMIN, node="district")
    security.post(f"/admin/users/{target['id']}/unlock")
    assert _user(app, "wei").locked_until is None
    security.post(f"/admin/users/{target['id']}/password", {"password": "Reset-pass-2026"})
    assert person.login("wei", "Reset-pass-2026").status_code == 302
    assert person.get("/").headers["Location"] == "/account/password"


def test_audit_trail_is_append_only_and_chained(app, dbconn, as_role, make_user) -> None:
    target = make_user((Role.RESPONDER, "town.02"), username="wei")
    admin = as_role(Role.SYSTEM_ADMIN, node="district")
    admin.post(f"/admin/users/{target['id']}/active", {"active": "0", "reason": "测试"})
    with app.app_context():
        assert audit.verify_chain().intact
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with dbconn.begin_nested():
            dbconn.execute(sa.text("UPDATE audit_record SET result = 'forged'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with dbconn.begin_nested():
            dbconn.execute(sa.text("DELETE FROM audit_record"))


def test_tampering_past_the_trigger_is_detected(app, dbconn, as_role, make_user) -> None:
    target = make_user((Role.RESPONDER, "town.02"), username="wei")
    admin = as_role(Role.SYSTEM_ADMIN, node="district")
    admin.post(f"/admin/users/{target['id']}/active", {"active": "0", "reason": "测试"})
    [row] = _records(app, "account.deactivate")
    # Someone with DDL rights drops the guard and edits a row: the chain shows it.
    if dbconn.dialect.name == "postgresql":
        dbconn.execute(sa.text("DROP TRIGGER audit_record_no_update ON audit_record"))
    else:
        dbconn.execute(sa.text("DROP TRIGGER audit_record_no_update"))
    dbconn.execute(sa.text("UPDATE audit_record SET actor_name = 'someone' WHERE id = :id"),
                   {"id": row.id})
    with app.app_context():
        check = audit.verify_chain()
    assert check.broken_at == row.id
    audit_admin = as_role(Role.AUDIT_ADMIN, node="district")
    page = audit_admin.text("/admin/audit?verify=1")
    assert f"防篡改链在第 {row.id} 条记录处断裂" in page


def test_account_search_matches_wildcards_literally(app, as_role, make_user) -> None:
    make_user((Role.RESPONDER, "town.02"), username="plain.user")
    admin = as_role(Role.SYSTEM_ADMIN, locale="en")
    assert "plain.user" in admin.text("/admin/users?q=plain")
    for typed in ("%25", "_", "plain_user", "%5C"):
        assert "plain.user" not in admin.text(f"/admin/users?q={typed}"), typed
