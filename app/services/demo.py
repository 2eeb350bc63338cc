"""Demo accounts for the embedded default: at least one per role, over several departments
and towns. Passwords are random per installation; the CLI keeps them in the instance folder."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import Department, PlatformNode, Role, RoleAssignment, User
from app.services.accounts import hash_password

# username, display name, department code, home node code, [(role, node code)], phone
DEMO_ACCOUNTS: tuple[tuple[str, str, str | None, str, list[tuple[Role, str]], str], ...] = (
    ("sysadmin", "王系统", "district_office", "district",
     [(Role.SYSTEM_ADMIN, "district")], "13800000001"),
    ("secadmin", "李安全", "district_office", "district",
     [(Role.SECURITY_ADMIN, "district")], "13800000002"),
    ("auditadmin", "赵审计", "district_office", "district",
     [(Role.AUDIT_ADMIN, "district")], "13800000003"),
    ("anweiban", "钱安委", "district_office", "district",
     [(Role.DISTRICT_OFFICE, "district")], "13800000004"),
    ("auditor", "孙核查", "district_office", "district",
     [(Role.AUDITOR, "district")], "13800000005"),
    ("yj_leader", "周分管", "emergency", "industry.emergency",
     [(Role.LEADER_IN_CHARGE, "industry.emergency")], "13800000006"),
    ("yj_head", "吴部门", "emergency", "industry.emergency",
     [(Role.DEPARTMENT_HEAD, "industry.emergency")], "13800000007"),
    ("yj_admin", "郑业务", "emergency", "scenario.flood_typhoon",
     [(Role.BUSINESS_ADMIN, "scenario.flood_typhoon")], "13800000008"),
    ("jjw_head", "冯建交", "construction", "industry.construction",
     [(Role.DEPARTMENT_HEAD, "industry.construction")], "13800000009"),
    ("jjw_admin", "陈燃气", "construction", "scenario.gas",
     [(Role.BUSINESS_ADMIN, "scenario.gas")], "13800000010"),
    ("sj_head", "褚电梯", "market", "scenario.elevator",
     [(Role.DEPARTMENT_HEAD, "scenario.elevator")], "13800000011"),
    ("rs_lujiazui", "卫处置", "city_ops", "town.02",
     [(Role.RESPONDER, "town.02")], "13800000012"),
    ("rs_zhangjiang", "蒋处置", "city_ops", "town.22",
     [(Role.RESPONDER, "town.22")], "13800000013"),
    ("rs_elevator", "沈维保", "market", "scenario.elevator",
     [(Role.RESPONDER, "scenario.elevator")], "13800000014"),
    ("rs_village", "韩居委", "city_ops", "town.01.v001",
     [(Role.RESPONDER, "town.01.v001")], "13800000015"),
    ("hb_admin", "曹标准", "district_office", "district",
     [(Role.BUSINESS_ADMIN, "district")], "13800000018"),
    ("stj_head", "何生态", "ecology", "industry.ecology",
     [(Role.DEPARTMENT_HEAD, "industry.ecology")], "13800000019"),
    ("fgw_head", "吕发改", "development", "industry.development",
     [(Role.DEPARTMENT_HEAD, "industry.development")], "13800000020"),
    ("ga_head", "施公安", "public_security", "industry.public_security",
     [(Role.DEPARTMENT_HEAD, "industry.public_security")], "13800000021"),
    ("gd_head", "张供电", "power", "scenario.power_supply",
     [(Role.DEPARTMENT_HEAD, "scenario.power_supply")], "13800000022"),
    ("qx_head", "孔气象", "meteorology", "industry.meteorology",
     [(Role.DEPARTMENT_HEAD, "industry.meteorology")], "13800000023"),
    # Drafts weather warnings; 应急管理局 (yj_head, yj_admin, yj_leader) verifies them.
    ("qx_admin", "严预报", "meteorology", "industry.meteorology",
     [(Role.BUSINESS_ADMIN, "industry.meteorology")], "13800000024"),
    # A town's own business administrator: reminders for a lane nobody holds in 张江 go here.
    ("cy_zhangjiang", "华城运", "city_ops", "town.22",
     [(Role.BUSINESS_ADMIN, "town.22")], "13800000025"),
    ("tech_head", "杨技术", "district_office", "district",
     [(Role.TECH_UNIT_HEAD, "district")], "13800000016"),
    ("tech_admin", "朱运维", "construction", "industry.construction",
     [(Role.TECH_ADMIN, "industry.construction")], "13800000017"),
)


def generate_password(length: int = 14) -> str:
    """A random password that satisfies the policy (all four character classes)."""
    pools = (string.ascii_lowercase, string.ascii_uppercase, string.digits, "@#%+=!")
    chars = [secrets.choice(pool) for pool in pools]
    alphabet = "".join(pools)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    display_name: str
    roles: list[str]
    password: str | None  # only set when the account was created by this call


def load_demo_accounts(*, now: datetime) -> list[DemoAccount]:
    """Create the demo accounts that do not exist yet; never touch existing ones."""
    nodes = {n.code: n for n in db.session.scalars(select(PlatformNode).where(
        PlatformNode.code.in_({code for acc in DEMO_ACCOUNTS for code in
                               [acc[3], *(c for _, c in acc[4])]})))}
    depts = {d.code: d for d in db.session.scalars(select(Department))}
    existing = set(db.session.scalars(select(User.username)))
    result: list[DemoAccount] = []
    for username, name, dept, home, roles, phone in DEMO_ACCOUNTS:
        if not nodes:
            raise LookupError("the platform tree is empty: run `flask seed org` first")
        labels = [f"{role.value}@{code}" for role, code in roles]
        if username in existing:
            result.append(DemoAccount(username, name, labels, None))
            continue
        password = generate_password()
        user = User(username=username, display_name=name, password_hash=hash_password(password),
                    department=depts.get(dept) if dept else None, home_node=nodes[home],
                    phone=phone, password_changed_at=now, created_at=now)
        user.assignments = [RoleAssignment(role=role, node=nodes[code], created_at=now)
                            for role, code in roles]
        db.session.add(user)
        result.append(DemoAccount(username, name, labels, password))
    db.session.flush()
    return result


def publish_demo_handbooks(*, now: datetime) -> list[str]:
    """Deploy the handbooks and take each one without a published version through review:
    the demo business administrator drafts, the owning department's demo head approves."""
    from app.models import HandbookVersion, VersionStatus
    from app.services import handbooks
    from app.services.permissions import can

    author = db.session.scalar(select(User).where(User.username == "hb_admin"))
    if author is None:
        raise LookupError("the demo accounts are missing: run `flask seed demo` first")
    handbooks.deploy(author=author, now=now, note="演示数据: 初始版本")
    heads = [u for u in db.session.scalars(select(User)) if Role.DEPARTMENT_HEAD in u.roles()]
    published: list[str] = []
    drafts = db.session.scalars(select(HandbookVersion).where(
        HandbookVersion.status == VersionStatus.DRAFT).order_by(HandbookVersion.id)).all()
    for version in drafts:
        if handbooks.published_version(version.handbook_key) is not None:
            continue
        reviewer = next((h for h in heads if h.id != author.id
                         and can(h, "handbook.review", version.node)), None)
        if reviewer is None:
            continue
        handbooks.submit_for_review(author, version.id, note="演示数据: 初始版本", now=now)
        handbooks.approve(reviewer, version.id, comment="同意发布（演示）", now=now)
        published.append(version.handbook_key)
    return published
