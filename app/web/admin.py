"""Account administration and the audit trail: thin views over the accounts and audit services."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.inputs import DbInteger, field_messages, load_schema
from app.models import Department, PlatformNode, Role
from app.services import accounts, audit
from app.services.errors import DomainError, ValidationFailed
from app.services.permissions import require, scope_paths
from app.services.scenarios import scenario_names
from app.web.util import form_dict, int_arg, me, now, policy, remote_addr

bp = Blueprint("admin", __name__, url_prefix="/admin")


class AccountForm(Schema):
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=80))
    home_node = DbInteger(required=True, strict=False)
    department = fields.String(load_default=None, validate=validate.Length(max=40))
    phone = fields.String(load_default=None,
                          validate=validate.Regexp(r"^$|^[0-9+\- ]{5,30}$",
                                                   error="Digits, spaces, + and - only."))


class NewAccountForm(AccountForm):
    username = fields.String(required=True,
                             validate=validate.Regexp(r"^[a-zA-Z][a-zA-Z0-9_.\-]{2,59}$",
                                                      error="3-60 letters, digits, _ . -; "
                                                            "starts with a letter."))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class RoleForm(Schema):
    role = fields.Enum(Role, required=True)
    node = DbInteger(required=True, strict=False)


def _load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()}
    for key in ("department", "phone"):
        if cleaned.get(key) == "":
            cleaned[key] = None
    try:
        return load_schema(schema, cleaned, unknown="exclude")
    except ValidationFailed as exc:
        exc.details = field_messages(exc.details)
        raise


def _choices() -> dict[str, Any]:
    user = me()
    paths = scope_paths(user, "accounts.manage") or scope_paths(user, "accounts.view")
    # Villages are many: administrators pick them from the node page; the form lists the rest.
    nodes = [n for n in db.session.scalars(
        select(PlatformNode).where(PlatformNode.kind != "village").order_by(PlatformNode.id))
        if any(n.path.startswith(p) for p in paths)]
    departments = db.session.scalars(select(Department).order_by(Department.id)).all()
    return {"nodes": nodes, "departments": departments}


@bp.get("/users")
@login_required
def users() -> str:
    q = request.args.get("q", "")
    result = accounts.list_accounts(me(), query=q, page=int_arg("page"))
    return render_template("admin/users.html", result=result, q=q)


@bp.route("/users/new", methods=["GET", "POST"])
@login_required
def new_user() -> Response | str | tuple[str, int]:
    require(me(), "accounts.manage", None)
    if request.method == "POST":
        try:
            data = _load(NewAccountForm(), form_dict())
            user = accounts.open_account(
                me(), username=data["username"], display_name=data["display_name"],
                password=data["password"], home_node_id=data["home_node"],
                department=data["department"], phone=data["phone"], now=now(),
                policy=policy(), remote_addr=remote_addr())
        except DomainError as exc:
            db.session.rollback()
            if exc.status == 403:
                raise
            return render_template("admin/user_form.html", errors=exc.details, error=exc.message,
                                   values=form_dict(), user=None, **_choices()), exc.status
        db.session.commit()
        flash(_("Account %(name)s opened. The user must change the password at first log-in.",
                name=user.username), "success")
        return redirect(url_for("admin.user", user_id=user.id))
    return render_template("admin/user_form.html", errors={}, error=None, values={}, user=None,
                           **_choices())


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@login_required
def user(user_id: int) -> Response | str | tuple[str, int]:
    target = accounts.get_account(user_id)
    require(me(), "accounts.view", target)
    errors: dict[str, Any] = {}
    error = None
    status = 200
    if request.method == "POST":
        require(me(), "accounts.manage", target)  # before the form is read
        try:
            data = _load(AccountForm(), form_dict())
            accounts.change_account(me(), target, display_name=data["display_name"],
                                    home_node_id=data["home_node"],
                                    department=data["department"], phone=data["phone"],
                                    now=now(), remote_addr=remote_addr())
        except DomainError as exc:
            db.session.rollback()
            if exc.status == 403:
                raise
            errors, error, status = exc.details, exc.message, exc.status
            target = accounts.get_account(user_id)
        else:
            db.session.commit()
            flash(_("Changes saved."), "success")
            return redirect(url_for("admin.user", user_id=user_id))
    values = {"display_name": target.display_name, "home_node": target.home_node_id,
              "department": target.department.code if target.department else "",
              "phone": target.phone or ""}
    if request.method == "POST":
        values.update(form_dict())
    history, _total = audit.list_records(object_type="user", object_id=str(target.id),
                                         per_page=20)
    return render_template("admin/user_form.html", user=target, errors=errors, error=error,
                           values=values, roles=accounts.assignable_roles(me()),
                           history=history, **_choices()), status


@bp.post("/users/<int:user_id>/active")
@login_required
def set_active(user_id: int) -> Response:
    target = accounts.get_account(user_id)
    active = request.form.get("active") == "1"
    accounts.set_active(me(), target, active, reason=request.form.get("reason", ""), now=now(),
                        remote_addr=remote_addr())
    db.session.commit()
    flash(_("Account reactivated.") if active else _("Account deactivated."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/unlock")
@login_required
def unlock(user_id: int) -> Response:
    accounts.unlock(me(), accounts.get_account(user_id), now=now(), remote_addr=remote_addr())
    db.session.commit()
    flash(_("Account unlocked."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/password")
@login_required
def reset_password(user_id: int) -> Response:
    accounts.reset_password(me(), accounts.get_account(user_id),
                            request.form.get("password", ""), now=now(), policy=policy(),
                            remote_addr=remote_addr())
    db.session.commit()
    flash(_("Password reset. The user must change it at the next log-in."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/roles")
@login_required
def assign_role(user_id: int) -> Response:
    target = accounts.get_account(user_id)
    require(me(), "roles.assign", target)  # before the form is read
    data = _load(RoleForm(), form_dict())
    accounts.assign_role(me(), target, data["role"], data["node"], now=now(),
                         remote_addr=remote_addr())
    db.session.commit()
    flash(_("Role assigned."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/roles/<int:assignment_id>/revoke")
@login_required
def revoke_role(user_id: int, assignment_id: int) -> Response:
    accounts.revoke_role(me(), assignment_id, now=now(), remote_addr=remote_addr())
    db.session.commit()
    flash(_("Role revoked."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.get("/audit")
@login_required
def audit_log() -> str:
    require(me(), "audit.view")
    action = request.args.get("action") or None
    actor = request.args.get("actor") or None
    rows, total = audit.list_records(page=int_arg("page"), action=action, actor=actor)
    check = audit.verify_chain() if request.args.get("verify") else None
    return render_template("admin/audit.html", rows=rows, total=total, page=int_arg("page"),
                           action=action, actor=actor, check=check, scenarios=scenario_names())
