"""`flask handbooks export` writes published versions back in the layout they are seeded from."""

from __future__ import annotations

from pathlib import Path

from app.extensions import db
from app.services import handbooks


def test_export_writes_the_published_files_and_a_deploy_from_them_changes_nothing(
        app, published, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = app.test_cli_runner().invoke(args=["handbooks", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported" in result.output
    for name in ("bpmn/scenario_gas.bpmn", "bpmn/shared/common_accept.bpmn",
                 "bpmn/warning_publication.bpmn", "handbooks/scenarios/gas.json"):
        assert (out / name).read_bytes() == (handbooks.ROOT / name).read_bytes(), name
    # The organisation seed is not part of a version: copy it to deploy from the export.
    (out / "handbooks" / "org").symlink_to(handbooks.ROOT / "handbooks" / "org")
    with app.app_context():
        deployed = handbooks.deploy(author=None, now=handbooks.latest_version("gas").created_at,
                                    root=out)
        # Every handbook: the 15 scenarios, warning publication and feed outage.
        assert deployed.created == [] and len(deployed.unchanged) == 17
        db.session.rollback()


def test_export_of_one_handbook_and_of_an_unknown_one(app, published, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["handbooks", "export", "--key", "elevator", "--out",
                                 str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert "bpmn/scenario_elevator.bpmn" in written and "bpmn/scenario_gas.bpmn" not in written
    missing = runner.invoke(args=["handbooks", "export", "--key", "nope", "--out",
                                  str(tmp_path / "x")])
    assert missing.exit_code != 0 and "nope" in missing.output
