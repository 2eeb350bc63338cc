"""The platform tree of Art 2/4 loaded from handbooks/org, and the tree page."""

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Department, NodeKind, PlatformNode
from app.services import org
from app.services.errors import SeedError


def test_tree_has_the_counts_of_article_2(ctx) -> None:
    counts = dict(db.session.execute(
        select(PlatformNode.kind, func.count()).group_by(PlatformNode.kind)).tuples().all())
    assert counts == {NodeKind.DISTRICT: 1, NodeKind.INDUSTRY: 7, NodeKind.SCENARIO: 15,
                      NodeKind.LINGANG: 1, NodeKind.TOWN: 36, NodeKind.VILLAGE: 1523}


def test_scenarios_have_their_owner_departments(ctx) -> None:
    owners = {n.name: n.department.name for n in db.session.scalars(
        select(PlatformNode).where(PlatformNode.kind == NodeKind.SCENARIO))}
    assert owners["防汛防台"] == "应急管理局"
    assert owners["燃气"] == "区建交委"
    assert owners["森林防火"] == "区生态环境局"
    assert owners["油气管道"] == "区发改委"
    assert owners["大客流"] == "浦东公安分局"
    assert owners["电梯"] == "区市场监管局"
    assert owners["供电"] == "浦东供电公司"
    assert len(owners) == 15


def test_inferred_and_generated_nodes_are_marked(ctx) -> None:
    inferred = set(db.session.scalars(select(PlatformNode.code).where(
        PlatformNode.is_inferred.is_(True))))
    assert inferred == {"industry.public_security", "industry.development"}
    villages = db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind == NodeKind.VILLAGE)).all()
    assert all(v.is_generated for v in villages)
    assert not any(n.is_generated for n in db.session.scalars(
        select(PlatformNode).where(PlatformNode.kind != NodeKind.VILLAGE)))


def test_towns_have_their_real_names_and_villages_hang_under_them(ctx) -> None:
    towns = db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind == NodeKind.TOWN)).all()
    names = {t.name for t in towns}
    assert {"陆家嘴街道", "潍坊新村街道", "川沙新镇", "张江镇", "南汇新城镇", "唐镇"} <= names
    assert sum(1 for t in towns if t.subdivision == "street") == 12
    lujiazui = org.node_by_code("town.02")
    village = org.node_by_code("town.02.v001")
    assert lujiazui.covers(village) and not village.covers(lujiazui)
    assert village.path.startswith(org.node_by_code("district").path)


def test_loading_twice_changes_nothing(ctx) -> None:
    result = org.load_org()
    assert result.created == 0 and result.updated == 0
    assert result.unchanged == 1595


def _broken_copy(tmp_path: Path, edit) -> Path:
    target = tmp_path / "org"
    shutil.copytree(org.ORG_DIR, target)
    path = target / "platform.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return target


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["scenarios"][3].pop("department"),
     "platform.json: scenarios.3.department: Missing data for required field."),
    (lambda d: d["scenarios"][0].update(department="nowhere"),
     "platform.json: scenarios.0.department: unknown department 'nowhere'"),
    (lambda d: d["scenarios"][1].update(parent="industry.moon"),
     "platform.json: scenarios.1.parent: unknown node 'industry.moon'"),
    (lambda d: d["villages"].update(total="many"),
     "platform.json: villages.total: Not a valid integer."),
    (lambda d: d["towns"]["streets"].append(["只有一个"]),
     "platform.json: towns.streets.12: Length must be 2."),
])
def test_malformed_seed_is_refused_naming_file_and_field(ctx, tmp_path, edit, words) -> None:
    directory = _broken_copy(tmp_path, edit)
    before = db.session.scalar(select(func.count()).select_from(PlatformNode))
    with pytest.raises(SeedError) as err:
        org.load_org(directory)
    assert words in str(err.value.message)
    assert db.session.scalar(select(func.count()).select_from(PlatformNode)) == before


def test_seed_that_is_not_json_says_where(ctx, tmp_path) -> None:
    target = tmp_path / "org"
    shutil.copytree(org.ORG_DIR, target)
    (target / "departments.json").write_text('{"source": "x", "departments": [}',
                                             encoding="utf-8")
    with pytest.raises(SeedError, match=r"departments.json: not valid JSON \(line 1"):
        org.load_org(target)


def test_cli_refuses_bad_seed_and_writes_nothing(app, dbconn, tmp_path) -> None:
    directory = _broken_copy(tmp_path, lambda d: d["lingang"].pop("name"))
    with app.app_context():
        db.session.query(Department).filter_by(code="lingang").one().name = "changed"
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["seed", "org", "--dir", str(directory)])
    assert result.exit_code == 1
    assert "nothing was written" in result.output
    assert "platform.json: lingang.name: Missing data for required field." in result.output
    with app.app_context():
        assert db.session.query(Department).filter_by(code="lingang").one().name == "changed"


def test_tree_page_shows_counts_and_owners(as_role) -> None:
    from app.models import Role

    browser = as_role(Role.RESPONDER, node="town.02")
    page = browser.text("/tree")
    for kind, n in [("district", 1), ("industry", 7), ("scenario", 15), ("lingang", 1),
                    ("town", 36), ("village", 1523)]:
        assert f'data-kind="{kind}"' in page
        assert f'<td class="num">{n}</td>' in page
    assert "区市场监管局" in page and "电梯" in page
    assert "推定" in page  # the two inferred sub-platforms are flagged
