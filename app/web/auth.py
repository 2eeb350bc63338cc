"""Log-in, log-out, own password, language."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers.response import Response

from app import sessions
from app.config import SUPPORTED_LOCALES
from app.extensions import db
from app.services import accounts
from app.services.errors import ValidationFailed
from app.web.util import me, now, policy, remote_addr, safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    error = None
    username = request.form.get("username", "")
    if request.method == "POST":
        password = request.form.get("password", "")
        if not username.strip() or not password:
            error = _("Enter both your user name and your password.")
        else:
            try:
                user = accounts.authenticate(username, password, now=now(), policy=policy(),
                                             remote_addr=remote_addr())
            except accounts.LoginRefused as exc:
                db.session.commit()  # failed attempts and lock-outs are kept
                return render_template("login.html", error=exc.message, username=username), 401
            db.session.commit()
            sessions.start(user, now=now())
            return redirect(safe_next(url_for("main.home"), request.args.get("next")))
        return render_template("login.html", error=error, username=username), 400
    return render_template("login.html", error=error, username=username)


@bp.post("/logout")
@login_required
def logout() -> Response:
    accounts.log_out(me(), now=now(), remote_addr=remote_addr())
    db.session.commit()
    sessions.end()
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> Response | str | tuple[str, int]:
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        new = request.form.get("new_password", "")
        if new != request.form.get("confirm_password", ""):
            errors["confirm_password"] = [_("The two new passwords differ.")]
        else:
            user = me()
            try:
                accounts.change_own_password(user, request.form.get("old_password", ""), new,
                                             now=now(), policy=policy())
            except ValidationFailed as exc:
                errors = exc.details
            else:
                db.session.commit()
                sessions.renew(user, now=now())  # the others ended with the old password
                flash(_("Your password has been changed."), "success")
                return redirect(url_for("main.home"))
        return render_template("password.html", errors=errors), 422
    return render_template("password.html", errors=errors)


@bp.post("/language")
def set_language() -> Response:
    code = request.form.get("locale", "")
    if code in SUPPORTED_LOCALES:
        session["locale"] = code
    return redirect(safe_next(url_for("main.home"), request.form.get("next")))
