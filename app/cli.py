"""Flask commands: seeding, demo log-ins, serving with the scheduler, audit checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from app.cli_alerts import register as register_alerts_cli
from app.cli_migration import register as register_migration_cli
from app.extensions import db
from app.services import audit, demo, org
from app.services.errors import SeedError

seed_cli = AppGroup("seed", help="Load organisation and demo data.")
handbooks_cli = AppGroup("handbooks", help="Deploy, list and export command handbook versions.")
audit_cli = AppGroup("audit", help="Check the audit trail.")
cases_cli = AppGroup("cases", help="Check cases: history chain, replay and kept counts.")
scheduler_cli = AppGroup("scheduler", help="Run the background scheduler on its own.")


def _now():  # type: ignore[no-untyped-def]
    return current_app.extensions["clock"]()


def _logins_file() -> Path:
    return Path(current_app.instance_path) / "demo-logins.txt"


@seed_cli.command("org")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=org.ORG_DIR, show_default=True)
def seed_org(directory: Path) -> None:
    """Load departments and the platform tree (idempotent)."""
    try:
        result = org.load_org(directory)
    except SeedError as exc:
        db.session.rollback()
        raise click.ClickException(
            f"seed data rejected, nothing was written: {exc.message}") from None
    db.session.commit()
    click.echo(f"platform tree: {result.created} created, {result.updated} updated, "
               f"{result.unchanged} unchanged")


@seed_cli.command("demo")
def seed_demo() -> None:
    """Create the demo accounts that are missing (idempotent)."""
    try:
        accounts = demo.load_demo_accounts(now=_now())
    except LookupError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    created = [a for a in accounts if a.password]
    if created:
        path = _logins_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = path.read_text(encoding="utf-8") if path.exists() else ""
        lines = [f"{a.username}\t{a.password}\t{a.display_name}\t{', '.join(a.roles)}"
                 for a in created]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(existing + "\n".join(lines) + "\n")
    click.echo(f"demo accounts: {len(created)} created, {len(accounts) - len(created)} existed")


@seed_cli.command("handbooks")
def seed_handbooks() -> None:
    """Deploy the handbooks and publish the ones never published, through demo reviewers."""
    from app.services.handbooks import DeployRefused

    try:
        published = demo.publish_demo_handbooks(now=_now())
    except (LookupError, DeployRefused) as exc:
        db.session.rollback()
        raise click.ClickException(getattr(exc, "message", str(exc))) from None
    db.session.commit()
    click.echo(f"handbooks published: {len(published)}"
               + (f" ({', '.join(published)})" if published else ""))


@seed_cli.command("traffic")
@click.pass_context
def seed_traffic(ctx: click.Context) -> None:
    """Simulate a first hour of alerts, once: nothing happens when cases exist already."""
    from sqlalchemy import func, select

    from app.cli_alerts import simulate
    from app.models import Case

    if db.session.scalar(select(func.count()).select_from(Case)):
        click.echo("demo traffic: cases exist already, nothing simulated")
        return
    ctx.invoke(simulate, scenarios=(), towns=("town.02", "town.22", "town.13"), levels=(),
               rate=0.0, count=40, repeat_share=0.3, normal_share=0.1, seed=2024, actor=None)


@seed_cli.command("show-logins")
def show_logins() -> None:
    """Print the demo log-ins created on this installation."""
    path = _logins_file()
    if not path.exists():
        click.echo("no demo log-ins on this installation (run `flask seed demo`)")
        return
    click.echo("Demo log-ins (user name, password, name, roles):")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            click.echo("  " + "  ".join(line.split("\t")))


@audit_cli.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain and report the first broken row."""
    check = audit.verify_chain()
    if check.intact:
        click.echo(f"audit chain intact: {check.checked} records")
    else:
        raise click.ClickException(f"audit chain broken at record {check.broken_at} "
                                   f"after {check.checked} good records")


@cases_cli.command("verify")
@click.argument("case_no", required=False)
@click.option("--all", "everything", is_flag=True, help="Verify every case.")
def cases_verify(case_no: str | None, everything: bool) -> None:
    """Recompute each case's history chain and replay it against its stored state."""
    from app.models import Case
    from app.services.verification import case_ids, verify_case

    if not case_no and not everything:
        raise click.UsageError("name a case number or pass --all")
    ids = case_ids(None if everything else case_no)
    if not ids:
        raise click.ClickException(f"no case {case_no}")
    failed = 0
    for case_id in ids:
        case = db.session.get(Case, case_id)
        assert case is not None
        verdict = verify_case(case)
        failed += not verdict.ok
        click.echo(verdict.line())
        db.session.expunge_all()  # keep memory flat over many cases
    click.echo(f"{len(ids)} cases verified, {failed} with problems")
    if failed:
        raise SystemExit(1)


@cases_cli.command("tally")
def cases_tally() -> None:
    """Check the case list's kept counts against the cases, and put them right."""
    from app.services import case_tally

    wrong = case_tally.reconcile()
    db.session.commit()
    click.echo(f"case tally: {wrong} keys differed from the cases" if wrong
               else "case tally: matches the cases")


@handbooks_cli.command("deploy")
@click.option("--author", default=None, help="user name of the business administrator drafting")
@click.option("--note", default="", help="why the handbooks changed")
def handbooks_deploy(author: str | None, note: str) -> None:
    """Create a draft version for every handbook in bpmn/ + handbooks/ whose content changed."""
    from sqlalchemy import select

    from app.models import User
    from app.services import handbooks

    actor = None
    if author:
        actor = db.session.scalar(select(User).where(User.username == author))
        if actor is None:
            raise click.ClickException(f"no user {author!r}")
    try:
        result = handbooks.deploy(author=actor, now=_now(), note=note)
    except handbooks.DeployRefused as exc:
        db.session.rollback()
        lines = "\n  ".join(exc.details.get("problems", [str(exc.message)]))
        raise click.ClickException(f"nothing was deployed:\n  {lines}") from None
    db.session.commit()
    for version in result.created:
        click.echo(f"draft {version.handbook_key} v{version.number} ({version.content_hash[:12]})")
    click.echo(f"handbooks: {len(result.created)} new drafts, {len(result.unchanged)} unchanged")


@handbooks_cli.command("list")
def handbooks_list() -> None:
    """Each handbook with its published version and versions awaiting review."""
    from app.services import handbooks

    for row in handbooks.overview():
        published = f"v{row.published.number}" if row.published else "-"
        click.echo(f"{row.key:24} published {published:5} versions {row.versions:3} "
                   f"in review {row.pending}")


@handbooks_cli.command("export")
@click.option("--key", default=None, help="only this handbook (default: every published one)")
@click.option("--out", "out", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="folder to write bpmn/ and handbooks/scenarios/ into")
def handbooks_export(key: str | None, out: Path) -> None:
    """Write published versions back to files, in the layout they are seeded from."""
    from app.services import handbooks
    from app.services.errors import DomainError

    try:
        written = handbooks.export(out, key)
    except DomainError as exc:
        raise click.ClickException(str(exc.message)) from None
    for path in written:
        click.echo(str(path))
    click.echo(f"exported {len(written)} files")


class _NeutralRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without "Werkzeug/x Python/y" in the Server header."""

    server_version = "pudong-ops"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version


def dev_server(host: str, port: int, app: Flask) -> BaseWSGIServer:
    """The threaded development server `flask serve` runs (`make run`)."""
    return make_server(host, port, app, threaded=True, request_handler=_NeutralRequestHandler)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the web application together with the background scheduler."""
    from app.jobs import start_scheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    guard = _single_scheduler(app)  # held while serving
    start_scheduler(app)
    server = dev_server(host, port, app)
    click.echo(f"serving on http://{host}:{server.server_port}/")
    try:
        server.serve_forever()
    finally:
        if guard is not None:
            guard.close()


def _single_scheduler(app: Flask) -> IO[str] | None:
    from app.jobs import SchedulerRunning, single_scheduler

    try:
        return single_scheduler(app)
    except SchedulerRunning as exc:
        raise click.ClickException(
            f"another scheduler already runs on this SQLite database ({exc}); SQLite allows "
            "one: use PostgreSQL for several") from None


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Fire timers and run the periodic jobs until stopped (SIGTERM or Ctrl-C).

    Run one or more of these beside the web workers on PostgreSQL; on SQLite only one.
    """
    import signal
    import threading

    from app.jobs import start_scheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    guard = _single_scheduler(app)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    start_scheduler(app)
    click.echo(f"scheduler running (pid {os.getpid()})")
    try:
        stop.wait()
    finally:
        # Let running jobs finish their transaction; timers left undone are found next time.
        app.extensions["scheduler"].shutdown(wait=True)
        if guard is not None:
            guard.close()
    click.echo("scheduler stopped")


def register_cli(app: Flask) -> None:
    app.cli.add_command(seed_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(cases_cli)
    app.cli.add_command(handbooks_cli)
    app.cli.add_command(serve)
    app.cli.add_command(scheduler_cli)
    register_alerts_cli(app)
    register_migration_cli(app)
