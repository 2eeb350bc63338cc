"""Home page per role, the platform tree, and the runtime status page."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import select

from app.extensions import db
from app.models import Heartbeat, NodeKind, User
from app.services import org
from app.services.permissions import require
from app.web.util import me, now

bp = Blueprint("main", __name__)


@bp.get("/")
@login_required
def home() -> str:
    user = me()
    return render_template("home.html", user=user, assignments=sorted(
        user.assignments, key=lambda a: (a.role.value, a.node.path)))


@bp.get("/tree")
@login_required
def tree() -> str:
    require(me(), "tree.view")
    return render_template("tree.html", summary=org.tree_summary(), NodeKind=NodeKind)


@bp.get("/tree/<int:node_id>")
@login_required
def node(node_id: int) -> str:
    target = org.get_node(node_id)
    require(me(), "tree.view")
    people = db.session.scalars(
        select(User).where(User.home_node_id == target.id).order_by(User.username)
    ).all()
    return render_template("node.html", node=target, ancestors=org.ancestors_of(target),
                           children=org.children_of(target), people=people)


@bp.get("/system/status")
@login_required
def status() -> str:
    require(me(), "system.status")
    from app.services import feed_intake, feeds, runtime_metrics, stuck

    beats = db.session.scalars(select(Heartbeat).order_by(Heartbeat.name)).all()
    return render_template("status.html", beats=beats, now=now(), stuck=stuck.count_stuck(),
                           figures=runtime_metrics.collect(now()),
                           silent=feeds.silent_feeds(now())[:50],
                           dead_letters=feed_intake.dead_letters(limit=50))
