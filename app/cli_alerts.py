"""Demo data for alert intake: a generated monitoring-point registry (`flask seed points`) and
a simulator feeding realistic readings through the intake service (`flask alerts simulate`)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import or_, select

from app.extensions import db
from app.models import ApiKey, MonitoringPoint, NodeKind, PlatformNode, Role, RoleAssignment, User
from app.services import api_keys, intake
from app.services.errors import DomainError
from app.services.handbook_data import (
    Handbook,
    WarningItem,
    level_for,
    read_handbooks,
    recovered,
)
from app.services.intake import AlertIn

alerts_cli = AppGroup("alerts", help="Simulate source systems reporting alerts.")

GENERATED = "（演示数据）"
DEMO_KEY_NAME = "演示模拟数据源 (flask alerts simulate)"
LAT_RANGE, LON_RANGE = (30.85, 31.40), (121.45, 121.95)

# Approximate centres of the 36 streets and towns (by their English name in platform.json).
TOWN_CENTRES: dict[str, tuple[float, float]] = {
    "Weifang Xincun": (31.228, 121.527), "Lujiazui": (31.236, 121.505),
    "Zhoujiadu": (31.178, 121.493), "Tangqiao": (31.212, 121.520),
    "Shanggang Xincun": (31.163, 121.478), "Nanmatou Road": (31.196, 121.507),
    "Hudong Xincun": (31.276, 121.566), "Jinyang Xincun": (31.262, 121.556),
    "Yangjing": (31.245, 121.540), "Puxing Road": (31.268, 121.545),
    "Dongming Road": (31.150, 121.506), "Huamu": (31.208, 121.555),
    "Chuansha Xinzhen": (31.190, 121.700), "Gaoqiao": (31.345, 121.580),
    "Beicai": (31.185, 121.545), "Heqing": (31.225, 121.760), "Tangzhen": (31.215, 121.655),
    "Caolu": (31.275, 121.670), "Jinqiao": (31.250, 121.605), "Gaohang": (31.290, 121.610),
    "Gaodong": (31.320, 121.630), "Zhangjiang": (31.200, 121.600),
    "Sanlin": (31.135, 121.520), "Huinan": (31.050, 121.760), "Zhoupu": (31.110, 121.575),
    "Xinchang": (31.020, 121.645), "Datuan": (30.975, 121.720), "Kangqiao": (31.140, 121.585),
    "Hangtou": (31.040, 121.600), "Zhuqiao": (31.115, 121.770), "Nicheng": (30.910, 121.820),
    "Xuanqiao": (31.060, 121.660), "Shuyuan": (30.950, 121.860), "Wanxiang": (30.990, 121.800),
    "Laogang": (31.050, 121.860), "Nanhui Xincheng": (30.895, 121.910),
}
_CENTRE = (31.22, 121.60)

SCENARIO_PREFIX = {
    "flood_typhoon": "FLD", "rain_snow_ice": "ICE", "industry_trade": "TRD",
    "hazardous_chemicals": "HAZ", "gas": "GAS", "bridge": "BRG", "utility_tunnel": "TUN",
    "construction_site": "SITE", "water": "WTR", "forest_fire": "FOR",
    "oil_gas_pipeline": "OGP", "traffic": "TRF", "crowd": "CRD", "elevator": "ELV",
    "power_supply": "PWR",
}

_CHEMICAL_TOWNS = ("Gaoqiao", "Caolu", "Gaodong", "Laogang", "Nicheng", "Zhuqiao")
_TUNNEL_TOWNS = ("Zhangjiang", "Huamu", "Lujiazui", "Nanhui Xincheng", "Jinqiao")
_RURAL_TOWNS = ("Chuansha Xinzhen", "Heqing", "Xinchang", "Datuan", "Nicheng", "Shuyuan",
                "Wanxiang", "Laogang", "Hangtou", "Xuanqiao")
_PIPELINE_TOWNS = ("Gaoqiao", "Caolu", "Chuansha Xinzhen", "Zhuqiao", "Huinan", "Datuan",
                   "Nicheng", "Laogang")
_ALL = None  # every street and town

# object type -> (code part, points per town, towns or None for every street and town)
POINT_PLAN: dict[str, tuple[str, int, tuple[str, ...] | None]] = {
    "rain_station": ("RS", 1, _ALL), "waterlogging_point": ("WL", 2, _ALL),
    "district_area": ("DA", 1, _ALL), "pump_station": ("PS", 1, _ALL),
    "road_section": ("RD", 2, _ALL), "confined_space": ("CS", 1, _ALL),
    "dust_workshop": ("DW", 1, _RURAL_TOWNS + _CHEMICAL_TOWNS),
    "storage_tank": ("TK", 3, _CHEMICAL_TOWNS), "tank_area": ("TA", 1, _CHEMICAL_TOWNS),
    "manhole": ("MH", 3, _ALL), "pipeline": ("PL", 1, _ALL),
    "regulator_station": ("RG", 1, _ALL), "bridge": ("BR", 1, _ALL),
    "tunnel_compartment": ("TC", 3, _TUNNEL_TOWNS), "sump": ("SP", 1, _TUNNEL_TOWNS),
    "foundation_pit": ("FP", 1, _ALL), "tower_crane": ("CR", 1, _ALL),
    "supply_pipe": ("SU", 1, _ALL), "water_quality_station": ("WQ", 1, _ALL),
    "drainage_manhole": ("DM", 2, _ALL), "forest_area": ("FA", 1, _RURAL_TOWNS),
    "pipeline_segment": ("PG", 2, _PIPELINE_TOWNS), "valve_chamber": ("VC", 1, _PIPELINE_TOWNS),
    "road_network": ("RN", 1, _ALL), "intersection": ("IX", 2, _ALL),
    "venue": ("VN", 1, _ALL), "transit_hub": ("TH", 1, _ALL),
    "elevator": ("EL", 4, _ALL), "cable_channel": ("CC", 2, _ALL),
    "substation": ("SS", 1, _ALL), "distribution_area": ("DA", 1, _ALL),
}

_WHOLE_UNITS = frozenset({"flag", "级", "人", "户", "次/24小时", "人/15分钟"})
_LEVEL_WEIGHTS = {"blue": 4, "yellow": 3, "orange": 2, "red": 1}


def _now() -> datetime:
    return cast(datetime, current_app.extensions["clock"]())


# ---------------------------------------------------------------- flask seed points

@dataclass(frozen=True)
class PlannedPoint:
    code: str
    name: str
    scenario: str
    object_type: str
    town: PlatformNode
    lat: float
    lon: float


def plan_points(handbooks: dict[str, Handbook], towns: Sequence[PlatformNode]
                ) -> list[PlannedPoint]:
    """The demo registry: same input, same points (coordinates come from a fixed seed)."""
    rng = random.Random(20240726)
    planned: list[PlannedPoint] = []
    for scenario in sorted(handbooks):
        objects = handbooks[scenario].data["object_types"]
        for obj in objects:
            part, per_town, only = POINT_PLAN.get(obj["code"], ("PT", 1, _ALL))
            chosen = [t for t in towns if only is None or t.name_en in only]
            number = 0
            for town in chosen:
                lat0, lon0 = TOWN_CENTRES.get(town.name_en or "", _CENTRE)
                for n in range(1, per_town + 1):
                    number += 1
                    lat = min(max(lat0 + rng.uniform(-0.012, 0.012), LAT_RANGE[0]), LAT_RANGE[1])
                    lon = min(max(lon0 + rng.uniform(-0.015, 0.015), LON_RANGE[0]), LON_RANGE[1])
                    planned.append(PlannedPoint(
                        code=f"{SCENARIO_PREFIX.get(scenario, scenario[:3].upper())}-{part}-"
                             f"{number:04d}",
                        name=f"{town.name}{obj['name']}{n:02d}号{GENERATED}",
                        scenario=scenario, object_type=obj["code"], town=town,
                        lat=round(lat, 6), lon=round(lon, 6)))
    return planned


@click.command("points")
@with_appcontext
def seed_points() -> None:
    """Create a generated demo registry of monitoring points for all 15 scenarios over the
    36 streets and towns (idempotent: existing codes are left alone)."""
    towns = list(db.session.scalars(select(PlatformNode).where(
        PlatformNode.kind == NodeKind.TOWN).order_by(PlatformNode.code)))
    if not towns:
        raise click.ClickException("the platform tree has no towns: run `flask seed org` first")
    owners = {n.code.removeprefix("scenario."): n.department_id
              for n in db.session.scalars(select(PlatformNode).where(
                  PlatformNode.kind == NodeKind.SCENARIO))}
    existing = set(db.session.scalars(select(MonitoringPoint.code)))
    created = 0
    for p in plan_points(read_handbooks(), towns):
        if p.code in existing:
            continue
        db.session.add(MonitoringPoint(
            code=p.code, name=p.name, scenario=p.scenario, object_type=p.object_type,
            node_id=p.town.id, owner_department_id=owners.get(p.scenario), lat=p.lat,
            lon=p.lon, active=True))
        created += 1
    db.session.commit()
    click.echo(f"monitoring points: {created} created, {len(existing)} existed "
               f"(generated demo data, marked {GENERATED} in the name)")


# ---------------------------------------------------------------- flask alerts simulate

def _whole(item: WarningItem) -> bool:
    return item.unit in _WHOLE_UNITS


def reading(item: WarningItem, level: str, rng: random.Random) -> float:
    """A value that reaches exactly `level` of the item (between it and the next level)."""
    order = list(item.thresholds)
    limit = item.thresholds[level]
    index = order.index(level)
    above = item.direction == "above"
    worse = item.thresholds[order[index - 1]] if index > 0 else None
    step = 1.0 if _whole(item) else 0.01
    for _ in range(20):
        if worse is not None:
            value = limit + (worse - limit) * rng.random()
        else:
            span = 0.0 if item.unit in ("flag", "级") else (abs(limit) * 0.2 or 1.0)
            value = limit + span * rng.random() * (1 if above else -1)
        value = float(round(value)) if _whole(item) else round(value, 2)
        if level_for(item, value) == level:
            return value
    for value in (limit, limit + step if above else limit - step):
        if level_for(item, value) == level:
            return value
    raise click.ClickException(f"cannot make a {level} reading for {item.code}")


def normal_reading(item: WarningItem, rng: random.Random) -> float:
    """A value safely back to normal for the item."""
    back = item.back_to_normal
    if item.direction == "above":
        value = back * rng.uniform(0.2, 0.9) if back > 0 else back - rng.uniform(1, 5)
    else:
        value = back + abs(back or 1) * rng.uniform(0.02, 0.1)
    value = float(int(value)) if _whole(item) else round(value, 2)
    if not recovered(item, value):
        value = back - 1 if item.direction == "above" else back + 1
    return value


def _actor(username: str | None) -> User:
    if username:
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        return user
    user = db.session.scalar(
        select(User).join(RoleAssignment, RoleAssignment.user_id == User.id)
        .where(User.active.is_(True),
               RoleAssignment.role.in_([Role.TECH_ADMIN, Role.SYSTEM_ADMIN]))
        .order_by(User.id).limit(1))
    if user is None:
        raise click.ClickException("no technical or system administrator to issue the demo "
                                   "API key: run `flask seed demo` first or pass --actor")
    return user


def demo_key(actor_name: str | None, scenarios: Sequence[str]) -> ApiKey:
    """The simulator's API key, issued (and its secret printed once) when missing."""
    key = db.session.scalar(select(ApiKey).where(ApiKey.name == DEMO_KEY_NAME,
                                                 ApiKey.revoked_at.is_(None)))
    if key is not None and set(scenarios) <= set(key.scenarios):
        return key
    try:
        issued = api_keys.issue(_actor(actor_name), name=DEMO_KEY_NAME, source_type="iot",
                                scenarios=list(scenarios), now=_now(),
                                known_scenarios=set(scenarios))
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(f"cannot issue the demo API key: {exc.message}") from None
    db.session.commit()
    click.echo(f"demo API key created (shown once, keep it to post to /api/v1/alerts): "
               f"{issued.secret}")
    return issued.key


def _points(scenarios: Sequence[str], towns: Sequence[str]) -> list[MonitoringPoint]:
    query = select(MonitoringPoint).join(PlatformNode, MonitoringPoint.node_id == PlatformNode.id) \
        .where(MonitoringPoint.scenario.in_(scenarios), MonitoringPoint.active.is_(True))
    if towns:
        nodes = list(db.session.scalars(select(PlatformNode).where(PlatformNode.code.in_(towns))))
        unknown = sorted(set(towns) - {n.code for n in nodes})
        if unknown:
            raise click.ClickException(f"unknown town code(s): {', '.join(unknown)} "
                                       "(use codes such as town.02)")
        query = query.where(or_(*[PlatformNode.path.startswith(n.path) for n in nodes]))
    return list(db.session.scalars(query.order_by(MonitoringPoint.code)))


@dataclass(eq=False)
class Target:
    point: MonitoringPoint
    item: WarningItem
    level: str | None = None


def _pick_level(item: WarningItem, levels: Sequence[str], rng: random.Random) -> str:
    allowed = [lv for lv in item.levels if not levels or lv in levels]
    return rng.choices(allowed, weights=[_LEVEL_WEIGHTS[lv] for lv in allowed])[0]


def _next_alert(targets: list[Target], alerted: list[Target], levels: Sequence[str],
                repeat_share: float, normal_share: float, rng: random.Random
                ) -> tuple[Target, float]:
    roll = rng.random()
    if alerted and roll < normal_share:
        target = alerted.pop(rng.randrange(len(alerted)))
        return target, normal_reading(target.item, rng)
    if alerted and roll < normal_share + repeat_share:
        target = rng.choice(alerted)
        assert target.level is not None
        order = [lv for lv in reversed(target.item.levels) if not levels or lv in levels]
        if rng.random() < 0.3 and target.level in order and order[-1] != target.level:
            target.level = order[order.index(target.level) + 1]  # readings rising: upgrade
        return target, reading(target.item, target.level, rng)
    busy = {id(t) for t in alerted}
    fresh = [t for t in targets if id(t) not in busy] or targets
    target = rng.choice(fresh)
    target.level = _pick_level(target.item, levels, rng)
    alerted.append(target)
    return target, reading(target.item, target.level, rng)


@alerts_cli.command("simulate")
@click.option("--scenario", "scenarios", multiple=True,
              help="scenario code (repeatable); default: all 15")
@click.option("--town", "towns", multiple=True, help="town node code such as town.02 "
                                                     "(repeatable); default: all")
@click.option("--level", "levels", multiple=True,
              type=click.Choice(["red", "orange", "yellow", "blue"]),
              help="levels the readings reach (repeatable); default: a realistic mix")
@click.option("--rate", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="alerts per second; 0 sends as fast as possible")
@click.option("--count", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--repeat-share", default=0.3, show_default=True,
              type=click.FloatRange(0, 1), help="share of repeats of an alerted point")
@click.option("--normal-share", default=0.1, show_default=True,
              type=click.FloatRange(0, 1), help="share of back-to-normal readings")
@click.option("--seed", default=None, type=int, help="random seed for a repeatable run")
@click.option("--actor", default=None,
              help="user name of the technical administrator issuing the demo key")
def simulate(scenarios: tuple[str, ...], towns: tuple[str, ...], levels: tuple[str, ...],
             rate: float, count: int, repeat_share: float, normal_share: float,
             seed: int | None, actor: str | None) -> None:
    """Send realistic readings through the intake service, as a source system would."""
    if repeat_share + normal_share > 1:
        raise click.BadParameter("--repeat-share plus --normal-share must not exceed 1")
    known = tuple(SCENARIO_PREFIX)
    unknown = sorted(set(scenarios) - set(known))
    if unknown:
        raise click.BadParameter(f"unknown scenario(s): {', '.join(unknown)}; "
                                 f"known: {', '.join(known)}", param_hint="--scenario")
    chosen = scenarios or known
    rng = random.Random(seed)
    try:
        handbooks = {sc: intake.handbook_for(sc) for sc in chosen}
    except DomainError as exc:
        raise click.ClickException(f"{exc.message} ({', '.join(exc.details.get('scenario', []))}"
                                   "); publish the handbooks first") from None
    targets = [Target(p, item) for p in _points(chosen, towns)
               for item in handbooks[p.scenario].warning_items
               if item.object_type == p.object_type
               and (not levels or set(item.levels) & set(levels))]
    if not targets:
        raise click.ClickException("no monitoring points for these scenarios, towns and "
                                   "levels: run `flask seed points` first")
    key = demo_key(actor, known)
    run = f"{rng.getrandbits(32):08x}"
    counts: Counter[str] = Counter()
    alerted: list[Target] = []
    for number in range(1, count + 1):
        target, value = _next_alert(targets, alerted, levels, repeat_share, normal_share, rng)
        alert = AlertIn(scenario=target.point.scenario, indicator=target.item.indicator,
                        point_code=target.point.code, value=value, observed_at=_now(),
                        idempotency_key=f"sim-{run}-{number}", payload={"simulated": True})
        try:
            outcome = intake.ingest(key, alert, now=_now())
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            counts["refused"] += 1
            click.echo(f"{number:4d} {alert.point_code} {alert.indicator}={value:g}: refused: "
                       f"{exc.message}")
            continue
        counts[outcome.disposition] += 1
        click.echo(f"{number:4d} {alert.point_code} {alert.indicator}={value:g} "
                   f"{target.item.unit}: {outcome.disposition} {outcome.case_no or '-'} "
                   f"({outcome.level or '-'})")
        if rate > 0 and number < count:
            time.sleep(1 / rate)
    names = ("opened", "grouped", "upgraded", "back_to_normal", "silenced", "below_threshold",
             "refused")
    click.echo(f"sent {count} alerts: " + ", ".join(f"{n} {counts[n]}" for n in names))


intake_cli = AppGroup("intake", help="Take in source-system feeds.")


@intake_cli.command("mqtt")
def intake_mqtt() -> None:
    """Subscribe to the MQTT broker (MQTT_HOST, MQTT_PORT, MQTT_TLS, MQTT_USERNAME, ...) and
    store alerts and heartbeats until stopped (Ctrl-C or SIGTERM)."""
    import signal

    from app.mqtt import Consumer, subscriptions

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    consumer = Consumer(app)
    signal.signal(signal.SIGTERM, lambda *_: consumer.stopping.set())
    topics = ", ".join(t for t, _ in subscriptions(app.config["MQTT_TOPIC_ROOT"]))
    click.echo(f"MQTT intake: {app.config['MQTT_HOST']}:{app.config['MQTT_PORT']} {topics}",
               err=True)
    try:
        consumer.run()
    except KeyboardInterrupt:
        pass


def register(app: Flask) -> None:
    """Add `flask alerts …`, `flask intake …` and `flask seed points` to the commands."""
    app.cli.add_command(alerts_cli)
    app.cli.add_command(intake_cli)
    seed = app.cli.commands.get("seed")
    if isinstance(seed, click.Group):
        seed.add_command(seed_points)

