"""Moving running cases to the published version: the cases on older versions with their dry
run, a batch of chosen cases with a progress bar that can be stopped."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.inputs import db_id
from app.models import CaseMigrationBatch
from app.services import case_migration, handbooks
from app.services.errors import NotFound
from app.services.overdue import scenario_names
from app.services.permissions import require
from app.web.util import me, now

bp = Blueprint("case_migration", __name__, url_prefix="/handbooks")

# Dry runs shown on the list page at once (each loads the case's engine state).
DRY_RUNS_SHOWN = 200


@bp.get("/<key>/migration")
@login_required
def cases(key: str) -> str:
    require(me(), "handbook.design")
    target = handbooks.published_version(key)
    if target is None:
        raise NotFound(_no_published())
    found = case_migration.cases_on_older_versions(me(), key)
    plans = [case_migration.dry_run(me(), c.id, target.id) for c in found[:DRY_RUNS_SHOWN]]
    return render_template("case_migration/cases.html", key=key, target=target, plans=plans,
                           total=len(found), scenarios=scenario_names(),
                           chosen=set(request.args.getlist("case")))


def _no_published() -> Any:
    from app.i18n import _l

    return _l("This handbook has no published version.")


@bp.get("/<key>/migration/cases/<int:case_id>")
@login_required
def dry_run(key: str, case_id: int) -> str:
    require(me(), "handbook.design")
    target = handbooks.published_version(key)
    if target is None:
        raise NotFound(_no_published())
    plan = case_migration.dry_run(me(), case_id, target.id)
    return render_template("case_migration/dry_run.html", key=key, target=target, plan=plan,
                           scenarios=scenario_names())


@bp.post("/<key>/migration")
@login_required
def start(key: str) -> Response:
    require(me(), "handbook.design")
    target = handbooks.published_version(key)
    if target is None:
        raise NotFound(_no_published())
    ids = [i for i in map(db_id, request.form.getlist("case")) if i is not None]
    batch = case_migration.start_batch(me(), key, target.id, ids, now=now())
    db.session.commit()
    return redirect(url_for("case_migration.batch", batch_id=batch.id))


def _state(batch: CaseMigrationBatch) -> dict[str, Any]:
    return {"id": batch.id, "status": batch.status, "done": batch.done, "total": batch.total,
            "results": batch.results}


@bp.get("/migrations/<int:batch_id>")
@login_required
def batch(batch_id: int) -> str:
    require(me(), "handbook.design")
    found = case_migration.get_batch(me(), batch_id)
    return render_template("case_migration/batch.html", batch=found, state=_state(found),
                           scenarios=scenario_names())


@bp.post("/migrations/<int:batch_id>/step")
@login_required
def step(batch_id: int) -> Response:
    require(me(), "handbook.design")
    found = case_migration.step_batch(me(), batch_id, now=now())
    db.session.commit()
    return jsonify(_state(found))


@bp.post("/migrations/<int:batch_id>/stop")
@login_required
def stop(batch_id: int) -> Response:
    require(me(), "handbook.design")
    found = case_migration.stop_batch(me(), batch_id, now=now())
    db.session.commit()
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return jsonify(_state(found))
    return redirect(url_for("case_migration.batch", batch_id=batch_id))
