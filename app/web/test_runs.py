"""Test runs of a handbook draft: start from a sample alert, complete tasks as any lane,
move the run's virtual clock, follow the path on the diagram, delete the run."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers.response import Response

from app.extensions import db
from app.models import CaseTask, HandbookTestRun
from app.services import handbooks, test_runs
from app.services.engine import compiled
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.overdue import scenario_names
from app.services.permissions import can, require
from app.web import case_history as history
from app.web.cases import form_errors, initial_values, read_task_form
from app.web.util import me, now

bp = Blueprint("test_runs", __name__, url_prefix="/designer")

# Steps of the virtual clock offered as buttons, in minutes.
CLOCK_STEPS = (5, 30, 60, 240, 1440)


# One rule for reading and starting: a POST with an id beyond the id column is then a 404
# like the GET (two rules on one path would answer it 405).
@bp.route("/versions/<int:version_id>/test-runs", methods=["GET", "POST"])
@login_required
def runs(version_id: int) -> Response | str | tuple[str, int]:
    """A version's test runs (the reviewer reads them) and, for its designers, a new one."""
    if request.method == "POST":
        return _start(version_id)
    require(me(), "handbook.view")
    version = handbooks.get_version(version_id)
    may_run = can(me(), "handbook.design", version.node) and version.status in test_runs.RUNNABLE
    choices = test_runs.sample_choices(version) if may_run else None
    return render_template("test_runs/index.html", version=version, may_run=may_run,
                           runs=test_runs.runs_of(version.id), choices=choices,
                           values=request.args, errors={}, scenarios=scenario_names())


def _number(raw: str | None) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValidationFailed(_("Enter a number."),
                               details={"value": [_("Enter a number.")]}) from None


def _start(version_id: int) -> Response | tuple[str, int]:
    version = handbooks.get_version(version_id)
    require(me(), "handbook.design", version.node)
    form = request.form
    try:
        sample = test_runs.SampleAlert(item_code=form.get("item_code", ""),
                                       level=form.get("level", ""),
                                       value=_number(form.get("value")),
                                       town=form.get("town", ""))
        run = test_runs.start_run(me(), version_id, sample, note=form.get("note", ""),
                                  now=now())
    except ValidationFailed as exc:
        db.session.rollback()
        version = handbooks.get_version(version_id)
        return render_template("test_runs/index.html", version=version, may_run=True,
                               runs=test_runs.runs_of(version.id),
                               choices=test_runs.sample_choices(version), values=form,
                               errors=exc.details, error=exc.message,
                               scenarios=scenario_names()), 422
    db.session.commit()
    flash(_("Test run started: %(case)s.", case=run.case.case_no), "success")
    return redirect(url_for("test_runs.run_page", run_id=run.id))


def _render_run(run: HandbookTestRun, *, values: dict[int, dict[str, Any]] | None = None,
                errors: dict[int, dict[str, list[str]]] | None = None, error: Any = None,
                status: int = 200) -> tuple[str, int]:
    case, version = run.case, run.version
    spec = compiled(version)
    events = history.events_of(case)
    # An outdated run's tasks belong to files the draft no longer holds: nothing to complete.
    tasks = [] if run.outdated else test_runs.open_tasks(run)
    forms = {t.id: spec.form_fields(t.process_id, t.element_id) for t in tasks}
    return render_template(
        "test_runs/run.html", run=run, case=case, version=version, tasks=tasks, forms=forms,
        values={t.id: (values or {}).get(t.id) or initial_values(case, forms[t.id]) for t in tasks},
        errors=errors or {}, error=error, clock_steps=CLOCK_STEPS,
        may_design=can(me(), "handbook.design", version.node),
        timeline=history.timeline(case, events, spec, everything=False),
        diagram=history.diagram(case, version, events,
                                request.args.get("diagram") or case.process_id,
                                at=run.clock_at),
        notices=test_runs.simulated_notices(run), attachments=history.attachments(case),
        scenarios=scenario_names()), status


@bp.get("/test-runs/<int:run_id>")
@login_required
def run_page(run_id: int) -> tuple[str, int]:
    return _render_run(test_runs.get_run(me(), run_id))


@bp.post("/test-runs/<int:run_id>/tasks/<int:step_id>")
@login_required
def complete(run_id: int, step_id: int) -> Response | tuple[str, int]:
    run = test_runs.get_run(me(), run_id, design=True)
    row = db.session.get(CaseTask, step_id)
    if row is None or row.case_id != run.case_id:
        raise NotFound(_("No such task."))
    test_runs.check_current(run)
    fields = compiled(run.version).form_fields(row.process_id, row.element_id)
    sub = read_task_form(run.case, fields)
    try:
        if sub.errors:
            raise ValidationFailed(_("Please correct the marked fields."), details=sub.errors)
        test_runs.complete_task(me(), run_id, step_id, sub.form)
    except (ValidationFailed, Conflict) as exc:
        db.session.rollback()
        run = test_runs.get_run(me(), run_id)
        errors = form_errors(exc.details) if isinstance(exc, ValidationFailed) else {}
        return _render_run(run, values={step_id: sub.values}, errors={step_id: errors},
                           error=exc.message, status=exc.status)
    db.session.commit()
    flash(_("Done: %(step)s.", step=row.name), "success")
    return redirect(url_for("test_runs.run_page", run_id=run_id))


@bp.post("/test-runs/<int:run_id>/clock")
@login_required
def clock(run_id: int) -> Response:
    test_runs.get_run(me(), run_id, design=True)
    raw = request.form.get("minutes", "").strip()
    # Anything but a whole number of minutes (or one beyond 30 days) is refused by the service.
    minutes = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 9 else 0
    run, fired = test_runs.advance_clock(me(), run_id, minutes=minutes)
    db.session.commit()
    flash(_("Clock moved to %(at)s; %(n)d timer steps fired.",
            at=history.local_input(run.clock_at.isoformat()).replace("T", " "), n=fired),
          "success")
    return redirect(url_for("test_runs.run_page", run_id=run_id))


@bp.post("/test-runs/<int:run_id>/retry")
@login_required
def retry(run_id: int) -> Response:
    test_runs.get_run(me(), run_id, design=True)
    moved_on = test_runs.retry_run(me(), run_id)
    db.session.commit()
    flash(_("The failed step ran again and the case moved on.") if moved_on else
          _("The step failed again; see the reason on the page."),
          "success" if moved_on else "error")
    return redirect(url_for("test_runs.run_page", run_id=run_id))


@bp.post("/test-runs/<int:run_id>/delete")
@login_required
def delete(run_id: int) -> Response:
    version_id = test_runs.get_run(me(), run_id, design=True).version_id
    case_no = test_runs.delete_run(me(), run_id, now=now())
    db.session.commit()
    flash(_("Test run %(case)s deleted.", case=case_no), "success")
    return redirect(url_for("test_runs.runs", version_id=version_id))
