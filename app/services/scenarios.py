"""Which scenarios exist and which a person sees: codes, names and scope filters over the
platform tree, used by every page and report that lists or filters by scenario."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select

from app.extensions import db
from app.i18n import _l
from app.models import NodeKind, PlatformNode, User
from app.services.permissions import scope_paths


def in_scope(paths: Sequence[str], *columns: Any) -> ColumnElement[bool]:
    """A row lies under one of `paths` through any of the given path columns."""
    if not paths:
        return false()
    return or_(*(column.startswith(p, autoescape=True) for p in paths for column in columns))


def scenarios_in_scope(paths: Sequence[str]) -> list[PlatformNode]:
    """The scenario nodes lying under one of `paths`, in tree order."""
    return list(db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind == NodeKind.SCENARIO, in_scope(paths, PlatformNode.path))
        .order_by(PlatformNode.id)))


def scenario_code(node: PlatformNode) -> str:
    return node.code.removeprefix("scenario.")


# A weather warning publication runs like a case of its own handbook; it names itself.
PUBLICATION_KEY = "warning_publication"


def scenario_names() -> dict[str, str]:
    """Scenario code -> its Chinese name, for labels (weather warning publications too)."""
    names = {scenario_code(n): n.name for n in db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind == NodeKind.SCENARIO).order_by(PlatformNode.id))}
    names[PUBLICATION_KEY] = str(_l("Weather warning publication"))
    return names


def visible_scenarios(actor: User, *actions: str) -> list[str]:
    """Scenario codes `actor` may see through any of `actions`."""
    paths = sorted({p for action in actions for p in scope_paths(actor, action)})
    return [scenario_code(n) for n in scenarios_in_scope(paths)]
