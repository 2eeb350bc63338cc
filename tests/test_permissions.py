"""Scope rules: a role on a node covers its descendants, and nothing else."""

import pytest

from app.extensions import db
from app.models import Role, User
from app.services import org
from app.services.permissions import ACTIONS, READ_ONLY_ROLES, WRITE_ACTIONS, can


def _user(make_user, *roles) -> User:
    return db.session.get(User, make_user(*roles)["id"])


def test_a_role_covers_its_node_and_descendants_only(ctx, make_user) -> None:
    admin = _user(make_user, (Role.TECH_ADMIN, "industry.construction"))
    assert can(admin, "accounts.manage", org.node_by_code("industry.construction"))
    assert can(admin, "accounts.manage", org.node_by_code("scenario.gas"))
    assert not can(admin, "accounts.manage", org.node_by_code("scenario.flood_typhoon"))
    assert not can(admin, "accounts.manage", org.node_by_code("district"))


def test_a_town_responder_sees_only_its_town(ctx, make_user) -> None:
    responder = _user(make_user, (Role.RESPONDER, "town.02"))
    assert can(responder, "node.people", org.node_by_code("town.02"))
    assert can(responder, "node.people", org.node_by_code("town.02.v010"))
    assert not can(responder, "node.people", org.node_by_code("town.22"))
    assert not can(responder, "accounts.view")


def test_auditor_can_read_but_change_nothing(ctx, make_user) -> None:
    auditor = _user(make_user, (Role.AUDITOR, "district"))
    assert can(auditor, "audit.view")
    assert can(auditor, "node.people", org.node_by_code("town.22"))
    for action in WRITE_ACTIONS:
        assert not can(auditor, action, org.node_by_code("district")), action


def test_no_write_action_is_granted_to_a_read_only_role() -> None:
    for action in WRITE_ACTIONS:
        assert not ACTIONS[action] & READ_ONLY_ROLES


def test_deactivated_users_can_do_nothing(ctx, make_user) -> None:
    admin = _user(make_user, (Role.SYSTEM_ADMIN, "district"))
    admin.active = False
    assert not can(admin, "accounts.manage")


def test_unknown_actions_are_a_programming_error(ctx, make_user) -> None:
    with pytest.raises(KeyError):
        can(_user(make_user, (Role.AUDITOR, "district")), "cases.eat")


def test_people_of_another_town_are_not_shown(as_role, make_user, app) -> None:
    make_user((Role.RESPONDER, "town.22"), username="zj", phone="13911112222")
    with app.app_context():
        zhangjiang = org.node_by_code("town.22").id
    lujiazui = as_role(Role.RESPONDER, node="town.02")
    page = lujiazui.text(f"/tree/{zhangjiang}")
    assert "13911112222" not in page and "测试zj" not in page
    assert 'id="people-hidden"' in page
    own = as_role(Role.RESPONDER, node="town.22")
    assert "13911112222" in own.text(f"/tree/{zhangjiang}")


def test_pages_outside_the_role_answer_403_with_a_message(as_role) -> None:
    responder = as_role(Role.RESPONDER, node="town.02")
    for path in ("/admin/users", "/admin/audit", "/system/status", "/admin/users/new"):
        response = responder.get(path)
        assert response.status_code == 403, path
        assert "您没有此项权限，或该对象不在您的管辖范围内。" in response.get_data(as_text=True)


def test_unknown_node_is_a_404_page(as_role) -> None:
    response = as_role(Role.RESPONDER, node="town.02").get("/tree/999999")
    assert response.status_code == 404
    assert "平台节点不存在。" in response.get_data(as_text=True)
