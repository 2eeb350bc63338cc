"""The 15 scenario handbooks load and validate; broken copies are refused with a precise message."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.services.errors import SeedError
from app.services.handbook_data import (
    LEVELS,
    SCENARIO_DIR,
    Handbook,
    department_codes,
    level_for,
    limits_for,
    parse_duration,
    platform_scenarios,
    read_handbooks,
    recovered,
)

SCENARIOS = sorted(platform_scenarios())


@pytest.fixture(scope="module")
def handbooks() -> dict[str, Handbook]:
    return read_handbooks()


@pytest.fixture
def copy_dir(tmp_path: Path) -> Path:
    """A private copy of the real handbooks, for tests that break one file."""
    target = tmp_path / "scenarios"
    shutil.copytree(SCENARIO_DIR, target)
    return target


def edit(directory: Path, scenario: str, change: Callable[[dict[str, Any]], object]) -> None:
    path = directory / f"{scenario}.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def refusal(directory: Path, **kwargs: Any) -> str:
    with pytest.raises(SeedError) as info:
        read_handbooks(directory, **kwargs)
    assert info.value.code == "seed_invalid"
    return str(info.value)


def test_all_fifteen_scenarios_of_the_platform_load(handbooks: dict[str, Handbook]) -> None:
    assert len(SCENARIOS) == 15
    assert sorted(handbooks) == SCENARIOS
    assert sorted(p.stem for p in SCENARIO_DIR.glob("*.json")) == SCENARIOS


@pytest.mark.parametrize("code", SCENARIOS)
def test_each_handbook_is_complete(handbooks: dict[str, Handbook], code: str) -> None:
    handbook = handbooks[code]
    data = handbook.data
    assert handbook.process_id == f"scenario_{code}"
    assert handbook.owner_department == platform_scenarios()[code]
    assert handbook.owner_department in department_codes()
    assert handbook.warning_items
    assert handbook.levels
    for level in handbook.levels:
        limits = limits_for(handbook, level)
        assert parse_duration(limits.accept) > timedelta(0)
        assert parse_duration(limits.due) >= parse_duration(limits.accept)
        ladder = data["escalation_ladder"][level]
        assert [s["to"] for s in ladder["missed_accept"]][:3] == [
            ["responder"], ["department_head"], ["leader_in_charge"]]
        assert ladder["missed_accept"][-1]["action"] == "supervise"
        assert ladder["overdue_not_closed"][0]["repeat_every"]
        assert handbook.disposal_types[level]
        assert any(m["levels"] is None or level in m["levels"] for m in data["measures"])
    cancellation = data["cancellation"]
    assert cancellation["causes"] and cancellation["criteria"] and cancellation["evidence"]
    assert all(cause["evidence"] for cause in cancellation["causes"])
    fields = {f["id"]: f for f in data["feedback_fields"]}
    assert {"cause_category", "photos", "location", "people_on_site", "arrived_at",
            "completed_at", "measures_taken", "remaining_risk"} <= set(fields)
    assert [v["id"] for v in fields["cause_category"]["values"]] == [
        c["code"] for c in cancellation["causes"]]
    assert data["escalation"]["medium_loop"] and data["escalation"]["big_loop"]
    assert data["special_steps"]
    assert all(step["form"] for step in data["special_steps"])


def test_user_facing_text_is_chinese(handbooks: dict[str, Handbook]) -> None:
    han = re.compile(r"[\u4e00-\u9fff]")
    for handbook in handbooks.values():
        texts = [handbook.name] + [i.name for i in handbook.warning_items]
        texts += [m["text"] for m in handbook.data["measures"]]
        texts += [f["label"] for f in handbook.data["feedback_fields"]]
        assert all(han.search(t) for t in texts), handbook.scenario


def test_item_codes_are_unique_across_handbooks(handbooks: dict[str, Handbook]) -> None:
    codes = [i.code for h in handbooks.values() for i in h.warning_items]
    assert len(codes) == len(set(codes))


def test_elevator_rescue_limit_is_statutory_30_minutes(handbooks: dict[str, Handbook]) -> None:
    elevator = handbooks["elevator"]
    assert elevator.item("ELEV-ENTRAPMENT").levels == ("red",)
    red = limits_for(elevator, "red")
    assert red.on_site == "PT30M"
    assert parse_duration(red.on_site) == timedelta(minutes=30)
    assert red.source_of("on_site") == "statutory"
    assert red.source_of("accept") == "default"
    rescue = next(s for s in elevator.data["special_steps"] if s["id"] == "rescue_trapped")
    assert rescue["deadline"]["duration"] == "PT30M"
    assert rescue["deadline"]["source"] == "statutory"
    assert rescue["deadline"]["start"] == "push"


def test_default_time_limits_follow_the_domain_table(handbooks: dict[str, Handbook]) -> None:
    gas = handbooks["gas"]
    assert limits_for(gas, "red").variables() == {
        "accept": "PT5M", "on_site": "PT30M", "feedback": "PT1H", "close": None, "due": "PT1H"}
    assert limits_for(gas, "orange").accept == "PT10M"
    assert limits_for(gas, "yellow").due == "PT24H"
    blue = limits_for(gas, "blue")
    assert (blue.accept, blue.on_site, blue.due) == ("PT2H", None, "P3D")
    assert blue.source_of("accept") == "default"


def test_limits_for_an_unused_level_is_refused(handbooks: dict[str, Handbook]) -> None:
    with pytest.raises(LookupError, match="industry_trade: no time limits for level 'blue'"):
        limits_for(handbooks["industry_trade"], "blue")


def test_sourced_and_inferred_values_are_told_apart(handbooks: dict[str, Handbook]) -> None:
    rain = handbooks["flood_typhoon"].data["warning_items"][0]
    assert rain["code"] == "FLOOD-RAIN-1H"
    assert [rain["thresholds"][lv]["default"] for lv in LEVELS] == [True, False, False, False]
    ch4 = handbooks["gas"].data["warning_items"][0]["thresholds"]
    assert all(t["default"] for t in ch4.values())  # DOMAIN.md marks them inferred
    o2 = handbooks["industry_trade"].data["warning_items"][0]["thresholds"]
    assert (o2["orange"]["value"], o2["orange"]["default"]) == (19.5, False)
    assert o2["red"]["default"]


@pytest.mark.parametrize(("scenario", "item", "value", "level"), [
    ("flood_typhoon", "FLOOD-RAIN-1H", 20, None),
    ("flood_typhoon", "FLOOD-RAIN-1H", 35, "blue"),
    ("flood_typhoon", "FLOOD-RAIN-1H", 36, "blue"),
    ("flood_typhoon", "FLOOD-RAIN-1H", 55, "yellow"),
    ("flood_typhoon", "FLOOD-RAIN-1H", 85, "orange"),
    ("flood_typhoon", "FLOOD-RAIN-6H", 90, "yellow"),
    ("industry_trade", "TRADE-O2-LOW", 20.9, None),
    ("industry_trade", "TRADE-O2-LOW", 19.5, None),  # only below 19.5 % is oxygen deficiency
    ("industry_trade", "TRADE-O2-LOW", 18, "orange"),
    ("industry_trade", "TRADE-O2-LOW", 17.9, "red"),
    ("industry_trade", "TRADE-COMBUSTIBLE", 30, "orange"),
    ("hazardous_chemicals", "HAZ-TOXIC", 200, "red"),
    ("gas", "GAS-CH4-MANHOLE", 5, None),
    ("gas", "GAS-CH4-MANHOLE", 30, "yellow"),
    ("gas", "GAS-CH4-MANHOLE", 100, "red"),
    ("utility_tunnel", "TUNNEL-CH4", 20, "orange"),
    ("utility_tunnel", "TUNNEL-CH4", 25, "red"),
    ("construction_site", "SITE-SETTLEMENT-RATE", 3.2, "yellow"),
    ("construction_site", "SITE-CRANE-LOAD", 95, "orange"),
    ("construction_site", "SITE-CRANE-LOAD", 100, "red"),
    ("rain_snow_ice", "ICE-ROAD-FORECAST", 13, None),
    ("rain_snow_ice", "ICE-ROAD-FORECAST", 5, "orange"),
    ("rain_snow_ice", "ICE-ROAD-FORECAST", 1, "red"),
    ("forest_fire", "FOREST-DANGER-CLASS", 3, "yellow"),
    ("forest_fire", "FOREST-DANGER-CLASS", 5, "red"),
    ("oil_gas_pipeline", "OGP-INTRUSION", 60, None),
    ("oil_gas_pipeline", "OGP-INTRUSION", 20, "yellow"),
    ("oil_gas_pipeline", "OGP-INTRUSION", 3, "red"),
    ("traffic", "TRAFFIC-INDEX", 5, "blue"),
    ("traffic", "TRAFFIC-INDEX", 9, "orange"),
    ("crowd", "CROWD-DENSITY", 3.5, "orange"),
    ("elevator", "ELEV-ENTRAPMENT", 1, "red"),
    ("elevator", "ELEV-ENTRAPMENT", 0, None),
    ("power_supply", "POWER-CABLE-TEMP", 85, "orange"),
    ("bridge", "BRIDGE-DEFLECTION", 92, "orange"),
    ("water", "WATER-CHLORINE-LOW", 0.01, "orange"),
])
def test_level_for_real_thresholds(handbooks: dict[str, Handbook], scenario: str, item: str,
                                   value: float, level: str | None) -> None:
    assert level_for(handbooks[scenario].item(item), value) == level


def test_level_for_ignores_nan(handbooks: dict[str, Handbook]) -> None:
    assert level_for(handbooks["gas"].item("GAS-CH4-MANHOLE"), math.nan) is None


def test_recovered_honours_direction(handbooks: dict[str, Handbook]) -> None:
    ch4 = handbooks["gas"].item("GAS-CH4-MANHOLE")
    assert recovered(ch4, 4) and not recovered(ch4, 5)
    o2 = handbooks["industry_trade"].item("TRADE-O2-LOW")
    assert recovered(o2, 20.9) and not recovered(o2, 19.6)


@pytest.mark.parametrize(("text", "expected"), [
    ("PT5M", timedelta(minutes=5)), ("PT1H30M", timedelta(hours=1, minutes=30)),
    ("P3D", timedelta(days=3)), ("P1DT2H", timedelta(days=1, hours=2)),
    ("PT0S", timedelta(0)), ("PT90S", timedelta(seconds=90)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", [
    "PT5X", "P", "PT", "P1DT", "5M", "pt5m", "P1W", "PT1.5H", " PT5M", "PT5M ", "PT5S5M", "P1Y",
    "PT-5M", "PT５M",
])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 duration of the form PnDTnHnMnS"):
        parse_duration(text)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets one value, addressed as `a.0.b`."""
    *parents, last = path.split(".")

    def change(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


_DELETE = object()


@pytest.mark.parametrize(("change", "message"), [
    pytest.param(_set("time_limits.red.accept", _DELETE),
                 "gas.json: time_limits.red.accept: Missing data for required field.",
                 id="missing-field"),
    pytest.param(_set("owner_department", "nowhere"),
                 "gas.json: owner_department: unknown department 'nowhere'",
                 id="unknown-department"),
    pytest.param(_set("owner_department", "ecology"),
                 "gas.json: owner_department: platform.json gives scenario gas to 'construction'",
                 id="owner-differs-from-platform"),
    pytest.param(_set("responsibility.joint_departments.0", "navy"),
                 "gas.json: responsibility.joint_departments.0: unknown department 'navy'",
                 id="unknown-joint-department"),
    pytest.param(_set("time_limits.orange", _DELETE),
                 "gas.json: time_limits.orange: level orange is used by warning item "
                 "GAS-CH4-MANHOLE but has no time limit", id="level-without-time-limit"),
    pytest.param(_set("escalation_ladder.blue", _DELETE),
                 "gas.json: escalation_ladder.blue: level blue is used by warning item "
                 "GAS-CH4-MANHOLE but has no escalation ladder", id="level-without-ladder"),
    pytest.param(_set("time_limits.red.accept", "PT5X"),
                 "gas.json: time_limits.red.accept: 'PT5X' is not an ISO 8601 duration of the "
                 "form PnDTnHnMnS", id="bad-duration"),
    pytest.param(_set("escalation_ladder.red.missed_accept.0.repeat_every", "5 minutes"),
                 "gas.json: escalation_ladder.red.missed_accept.0.repeat_every: '5 minutes' is "
                 "not an ISO 8601 duration", id="bad-ladder-duration"),
    pytest.param(_set("warning_items.0.thresholds.yellow.value", 60),
                 "gas.json: warning_items.0.thresholds: thresholds must rise with severity for "
                 "direction above: orange (50) is not above yellow (60)", id="not-monotonic"),
    pytest.param(_set("warning_items.0.direction", "below"),
                 "gas.json: warning_items.0.thresholds: thresholds must fall with severity for "
                 "direction below: yellow (25) is not below blue (10)",
                 id="not-monotonic-for-direction"),
    pytest.param(_set("warning_items.0.back_to_normal.value", 12),
                 "gas.json: warning_items.0.back_to_normal: 12 is past the blue threshold (10)",
                 id="back-to-normal-past-threshold"),
    pytest.param(_set("warning_items.1.code", "GAS-CH4-MANHOLE"),
                 "gas.json: warning_items.1.code: duplicate code 'GAS-CH4-MANHOLE'",
                 id="duplicate-item-code"),
    pytest.param(_set("measures.1.id", "retest_gas"),
                 "gas.json: measures.1.id: duplicate id 'retest_gas'", id="duplicate-measure-id"),
    pytest.param(_set("scenario", "bridge"),
                 "gas.json: scenario: 'bridge' does not match the file name (expected "
                 "bridge.json)", id="file-name-differs"),
    pytest.param(_set("process_id", "gas_process"),
                 "gas.json: process_id: must be 'scenario_gas', not 'gas_process'",
                 id="wrong-process-id"),
    pytest.param(_set("feedback_fields.7.values", _DELETE),
                 "gas.json: feedback_fields.7.values: an enum field needs values",
                 id="enum-without-values"),
    pytest.param(_set("feedback_fields.0.values.0.id", "broken_sensor"),
                 "gas.json: feedback_fields.0.values: cause_category must offer the "
                 "cancellation causes", id="cause-category-differs"),
    pytest.param(_set("warning_items.0.source_types", ["iot", "satellite"]),
                 "gas.json: warning_items.0.source_types.1: Must be one of: iot, big_data, "
                 "video_ai, social.", id="unknown-source-type"),
    pytest.param(_set("warning_items.0.duration", {"rule": "sustained"}),
                 "gas.json: warning_items.0.duration.seconds: a sustained rule needs seconds",
                 id="sustained-without-seconds"),
    pytest.param(_set("warning_items.0.thresholds.red.source", "statutory"),
                 "gas.json: warning_items.0.thresholds.red.source: an inferred default cannot "
                 "also have a source", id="default-and-source"),
    pytest.param(_set("time_limits.red.acept", "PT5M"),
                 "gas.json: time_limits.red.acept: Unknown field.", id="unknown-key"),
    pytest.param(_set("time_limits.red.on_site", "PT1M"),
                 "gas.json: time_limits.red.on_site: PT1M is shorter than the accept limit",
                 id="on-site-before-accept"),
    pytest.param(_set("time_limits.blue.overrides", {"on_site": {"source": "statutory",
                                                                  "basis": "法规"}}),
                 "gas.json: time_limits.blue.overrides: overrides on_site, which is not set",
                 id="override-of-unset-limit"),
    pytest.param(_set("escalation_ladder.red.missed_accept.1.after", "PT1H"),
                 "gas.json: escalation_ladder.red.missed_accept.2.after: steps must be in "
                 "order of their delay", id="ladder-out-of-order"),
    pytest.param(_set("escalation.big_loop.1.params", {"minimum": 2}),
                 "gas.json: escalation.big_loop.1.params.min: Missing data for required field.",
                 id="condition-without-parameter"),
    pytest.param(_set("escalation.big_loop.0.params.levels", ["crimson"]),
                 "gas.json: escalation.big_loop.0.params.levels.0: Must be one of: red, orange, "
                 "yellow, blue.", id="condition-bad-parameter"),
    pytest.param(_set("measures.2.items", ["GAS-NOPE"]),
                 "gas.json: measures.2.items: unknown warning item 'GAS-NOPE'",
                 id="measure-for-unknown-item"),
    pytest.param(_set("weather_warnings.0.type", "meteor_shower"),
                 "gas.json: weather_warnings.0.type: Must be one of: typhoon, rainstorm",
                 id="unknown-weather-warning"),
    pytest.param(_set("weather_warnings.1.type", "typhoon"),
                 "gas.json: weather_warnings.1.type: duplicate type 'typhoon'",
                 id="weather-warning-twice"),
    pytest.param(_set("responsibility.fallback.chain.0", {"role": "responder",
                                                          "scope": "village"}),
                 "gas.json: responsibility.fallback.chain.0.scope: Must be one of: town, "
                 "department, district.", id="fallback-to-unknown-scope"),
    pytest.param(_set("responsibility.fallback.chain", []),
                 "gas.json: responsibility.fallback.chain: Shorter than minimum length 1.",
                 id="empty-fallback-chain"),
])
def test_broken_handbook_is_refused(copy_dir: Path, change: Callable[[dict[str, Any]], None],
                                    message: str) -> None:
    edit(copy_dir, "gas", change)
    assert message in refusal(copy_dir)


def test_refusal_names_file_and_fields_in_details(copy_dir: Path) -> None:
    edit(copy_dir, "gas", _set("time_limits.red.accept", _DELETE))
    with pytest.raises(SeedError) as info:
        read_handbooks(copy_dir)
    assert info.value.details == {
        "file": "gas.json", "fields": ["time_limits.red.accept: Missing data for required field."]}


def test_weather_warnings_reach_the_scenarios_they_concern(
        handbooks: dict[str, Handbook]) -> None:
    def concerned(kind: str) -> set[str]:
        return {code for code, h in handbooks.items() if kind in h.weather_warning_types}

    assert {"flood_typhoon", "water"} <= concerned("rainstorm")
    assert "rain_snow_ice" not in concerned("rainstorm")
    assert {"rain_snow_ice", "traffic"} <= concerned("road_icing")
    assert {"flood_typhoon", "power_supply", "construction_site"} <= concerned("typhoon")
    assert {"construction_site", "bridge"} <= concerned("gale")
    assert "traffic" in concerned("fog") and "power_supply" in concerned("high_temperature")
    # What the sources do not say is marked inferred for the department head to review.
    for handbook in handbooks.values():
        for row in handbook.data["weather_warnings"]:
            assert row["default"] or row["basis"], (handbook.scenario, row)


def test_a_handbook_without_a_fallback_chain_uses_the_default(copy_dir: Path) -> None:
    edit(copy_dir, "gas", _set("responsibility.fallback", _DELETE))
    chain = read_handbooks(copy_dir)["gas"].fallback_chain
    assert [(s["role"], s["scope"]) for s in chain] == [
        ("business_admin", "town"), ("business_admin", "department"),
        ("department_head", "department"), ("district_office", "district")]
    edit(copy_dir, "gas", _set("responsibility.fallback", {
        "chain": [{"role": "leader_in_charge", "scope": "department"}], "default": True}))
    assert [s["role"] for s in read_handbooks(copy_dir)["gas"].fallback_chain] == [
        "leader_in_charge"]


def test_real_files_are_untouched_by_the_broken_copies(handbooks: dict[str, Handbook]) -> None:
    assert read_handbooks()["gas"].data == handbooks["gas"].data


def test_invalid_json_names_line_and_column(copy_dir: Path) -> None:
    (copy_dir / "gas.json").write_text('{\n  "scenario": "gas",\n  "name" "燃气"\n}\n',
                                       encoding="utf-8")
    assert refusal(copy_dir) == ("gas.json: not valid JSON (line 3, column 10): "
                                 "Expecting ':' delimiter")


def test_duplicate_json_key_is_refused(copy_dir: Path) -> None:
    text = (copy_dir / "gas.json").read_text(encoding="utf-8")
    (copy_dir / "gas.json").write_text(text.replace('"name": "燃气",',
                                                    '"name": "燃气", "name": "煤气",', 1),
                                       encoding="utf-8")
    assert refusal(copy_dir) == "gas.json: not valid JSON: duplicate key 'name'"


def test_unknown_scenario_is_refused(copy_dir: Path) -> None:
    edit(copy_dir, "gas", _set("scenario", "sewers"))
    (copy_dir / "gas.json").rename(copy_dir / "sewers.json")
    assert "sewers.json: scenario: unknown scenario 'sewers': platform.json has no such " \
           "scenario" in refusal(copy_dir)


def test_missing_handbook_is_refused(copy_dir: Path) -> None:
    (copy_dir / "water.json").unlink()
    assert refusal(copy_dir) == "scenarios: no handbook for scenario water (expected water.json)"


def test_item_code_in_two_handbooks_is_refused(copy_dir: Path) -> None:
    edit(copy_dir, "bridge", _set("warning_items.0.code", "GAS-CH4-MANHOLE"))
    assert refusal(copy_dir) == ("gas.json: warning_items.0.code: 'GAS-CH4-MANHOLE' is also "
                                 "used in bridge.json")


def test_departments_can_be_given(copy_dir: Path) -> None:
    message = refusal(copy_dir, departments=department_codes() - {"fire"})
    assert message.startswith("elevator.json: ")
    assert "unknown department 'fire'" in message


def test_several_problems_are_reported_together(copy_dir: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["time_limits"]["red"]["accept"] = "PT5X"
        doc["name"] = ""
    edit(copy_dir, "gas", change)
    message = refusal(copy_dir)
    assert "gas.json: name: Shorter than minimum length 1." in message
    assert "gas.json: time_limits.red.accept: 'PT5X'" in message
