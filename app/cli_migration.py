"""`flask handbooks migrate`: move running cases to the published version, after a dry run."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db


@click.command("migrate")
@click.argument("key")
@click.option("--as", "username", required=True,
              help="user name of a designer of the handbook (handbook.design on its node)")
@click.option("--case", "case_numbers", multiple=True, help="only these case numbers")
@click.option("--dry-run", is_flag=True, help="say what would happen; change nothing")
@with_appcontext
def migrate_cases(key: str, username: str, case_numbers: tuple[str, ...], dry_run: bool) -> None:
    """Move the running cases of handbook KEY to its published version, one transaction per
    case; a case that cannot move is reported and left as it was."""
    from app.models import User
    from app.services import case_migration, handbooks
    from app.services.errors import DomainError

    actor = db.session.scalar(select(User).where(User.username == username))
    if actor is None:
        raise click.ClickException(f"no user {username!r}")
    target = handbooks.published_version(key)
    try:
        if target is None:
            raise click.ClickException(f"handbook {key!r} has no published version")
        found = case_migration.cases_on_older_versions(actor, key)
    except DomainError as exc:
        raise click.ClickException(str(exc.message)) from None
    chosen = [c for c in found if not case_numbers or c.case_no in case_numbers]
    click.echo(f"{key}: {len(chosen)} running cases on older versions; target v{target.number}")
    problems = 0
    for case_id, case_no in [(c.id, c.case_no) for c in chosen]:
        if dry_run:
            plan = case_migration.dry_run(actor, case_id, target.id)
            verdict = "can move" if plan.can_move else "blocked: " + "; ".join(plan.reasons)
            click.echo(f"{case_no}: v{plan.from_number} -> v{plan.to_number} {verdict}")
            for task in plan.tasks:
                where = task.target_element or "(not in the target)"
                click.echo(f"  task {task.element_id} -> {where}, due {task.due_at} kept")
            continue
        outcome = case_migration.migrate_case(actor, case_id, target.id,
                                              now=current_app.extensions["clock"]())
        db.session.commit()
        problems += outcome.outcome != "migrated"
        reasons = f" ({'; '.join(outcome.reasons)})" if outcome.reasons else ""
        click.echo(f"{case_no}: {outcome.outcome}{reasons}")
    if problems:
        raise click.ClickException(f"{problems} cases were not migrated")


def register(app: Flask) -> None:
    """Add `flask handbooks migrate` to the handbooks command group."""
    group = app.cli.commands.get("handbooks")
    if isinstance(group, click.Group):
        group.add_command(migrate_cases)
