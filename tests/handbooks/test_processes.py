"""The handbook BPMN files: they compile, their diagrams are complete, and every scenario runs
through the real runtime (happy path, false alarm, missed deadlines, big loop, messages)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree

from tests.handbooks.conftest import (
    BPMN,
    SCENARIOS,
    T0,
    Case,
    assess,
    compiled,
    finish,
    handbook,
    happy_choice,
    open_case,
    scenario_feedback,
    seconds,
    start_data,
    steps_for,
    upgrade_levels,
)
from workflows import FixedClock, Runtime, verify_replay

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC",
      "camunda": "http://camunda.org/schema/1.0/bpmn"}
SHARED = ("common_assessment", "expert_assessment", "common_accept", "common_closure",
          "big_loop")
PROCESS_IDS = (*SHARED, "warning_publication", *(f"scenario_{c}" for c in SCENARIOS))
ROLES = {"business_admin", "responder", "department_head", "leader_in_charge"}
TASK_LANES = {f"Lane_{r}" for r in ROLES} | {
    "Lane_emergency", "Lane_city_ops", "Lane_meteorology", "Lane_departments"}
NOTICES = {"reminder", "escalation", "supervision", "tracking", "level_upgrade",
           "back_to_normal", "weather_warning"}
FLOW_NODES = ("startEvent", "endEvent", "userTask", "scriptTask", "callActivity",
              "exclusiveGateway", "parallelGateway", "inclusiveGateway", "boundaryEvent",
              "subProcess", "intermediateCatchEvent", "intermediateThrowEvent", "task")
CLOSURE = ["Activity_cancel_warning", "Activity_feedback", "Activity_verify"]


# process id -> its file: each file is named after the process it defines
PROCESS_FILES = {path.stem: path for path in sorted(BPMN.rglob("*.bpmn"))}


def path_of(process_id: str) -> Path:
    return PROCESS_FILES[process_id]


def tree(process_id: str) -> etree._Element:
    return etree.parse(str(path_of(process_id))).getroot()


def properties(process_id: str) -> dict[str, dict[str, str]]:
    """element id -> its camunda:properties (form field properties excluded)."""
    result = {}
    for element in tree(process_id).iter():
        found = element.findall("bpmn:extensionElements/camunda:properties/camunda:property", NS)
        if found:
            result[element.get("id")] = {p.get("name"): p.get("value") for p in found}
    return result


# -- static checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("process_id", PROCESS_IDS)
def test_every_file_compiles_with_its_shared_files(process_id: str) -> None:
    version = compiled(process_id)
    assert process_id in version.process_ids
    if process_id.startswith("scenario_"):
        assert set(SHARED) <= set(version.process_ids)


@pytest.mark.parametrize("process_id", PROCESS_IDS)
def test_diagram_draws_every_element_without_overlaps(process_id: str) -> None:
    root = tree(process_id)
    drawn = {e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNShape", NS)}
    drawn.update({e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNEdge", NS)})
    expected = [e.get("id") for tag in (*FLOW_NODES, "sequenceFlow", "lane", "participant",
                                        "dataObjectReference", "dataInputAssociation",
                                        "dataOutputAssociation")
                for e in root.iterfind(f".//bpmn:{tag}", NS)]
    assert expected and [i for i in expected if i not in drawn] == []
    assert root.find("bpmn:collaboration/bpmn:participant", NS).get("processRef") == process_id
    process = root.find("bpmn:process", NS)
    assert process.get("isExecutable") == "true" and process.get("name")
    merges = {f.get("targetRef") for f in root.iterfind(".//bpmn:sequenceFlow", NS)} - {
        f.get("sourceRef") for f in root.iterfind(".//bpmn:sequenceFlow[@name]", NS)}
    boxes = {}
    for element in process.iter():
        tag = etree.QName(element).localname
        if tag in FLOW_NODES and tag != "boundaryEvent":
            named = element.get("name") or (tag.endswith("Gateway") and element.get("id") in merges)
            assert named, f"{element.get('id')} has no name"
            bounds = drawn[element.get("id")].find("dc:Bounds", NS)
            boxes[element.get("id")] = (element, [float(bounds.get(k)) for k in
                                                  ("x", "y", "width", "height")])
    for a, (element_a, (ax, ay, aw, ah)) in boxes.items():
        for b, (element_b, (bx, by, bw, bh)) in boxes.items():
            nested = element_b in element_a.iterdescendants() or element_a in \
                element_b.iterdescendants()
            if a < b and not nested:
                assert not (ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah), \
                    f"{a} overlaps {b}"


@pytest.mark.parametrize("process_id", PROCESS_IDS)
def test_every_node_is_connected_and_every_choice_is_decidable(process_id: str) -> None:
    root = tree(process_id)
    flows = root.findall(".//bpmn:sequenceFlow", NS)
    outgoing = Counter(f.get("sourceRef") for f in flows)
    incoming = Counter(f.get("targetRef") for f in flows)
    for element in root.iter():
        tag, element_id = etree.QName(element).localname, element.get("id")
        if tag not in FLOW_NODES or tag == "subProcess":
            continue
        if tag not in ("startEvent", "boundaryEvent"):
            assert incoming[element_id] >= 1, f"{element_id} has no incoming flow"
        if tag != "endEvent":
            assert outgoing[element_id] >= 1, f"{element_id} has no outgoing flow"
        if tag in ("exclusiveGateway", "inclusiveGateway") and outgoing[element_id] > 1:
            for flow in (f for f in flows if f.get("sourceRef") == element_id):
                assert flow.find("bpmn:conditionExpression", NS) is not None or \
                    element.get("default") == flow.get("id"), flow.get("id")


@pytest.mark.parametrize("process_id", PROCESS_IDS)
def test_user_tasks_are_in_role_lanes_and_documented(process_id: str) -> None:
    root = tree(process_id)
    lane_of = {ref.text: lane.get("id") for lane in root.iterfind(".//bpmn:lane", NS)
               for ref in lane.iterfind("bpmn:flowNodeRef", NS)}
    for task in root.iterfind(".//bpmn:userTask", NS):
        assert lane_of.get(task.get("id")) in TASK_LANES, task.get("id")
        assert (task.findtext("bpmn:documentation", namespaces=NS) or "").strip()
    for lane in root.iterfind(".//bpmn:lane", NS):
        assert lane.get("id") in TASK_LANES | {"Lane_system"} and lane.get("name")
    for task in root.iterfind(".//bpmn:scriptTask", NS):
        assert lane_of.get(task.get("id"), "Lane_system") == "Lane_system"


@pytest.mark.parametrize("process_id", PROCESS_IDS)
def test_notification_properties_name_roles_and_notices(process_id: str) -> None:
    for element_id, props in properties(process_id).items():
        if "notify" in props:
            assert set(props["notify"].split(",")) <= ROLES, element_id
            assert props["notice"] in NOTICES, element_id


def test_warning_publication_broadcasts_to_weather_scenarios() -> None:
    publish = properties("warning_publication")["Activity_publish"]
    assert publish["broadcast_message"] == "weather_warning"
    # Which scenarios a warning reaches is handbook data (`weather_warnings`), not the BPMN's.
    assert "scenarios" not in publish
    verify = properties("warning_publication")["Activity_verify_warning"]
    assert verify["separate_from"] == "Activity_draft_warning"
    assert set(verify["roles"].split(",")) == {"department_head", "business_admin",
                                               "leader_in_charge"}
    for code in SCENARIOS:
        names = {m.get("name") for m in tree(f"scenario_{code}").iterfind("bpmn:message", NS)}
        weather = code in ("flood_typhoon", "rain_snow_ice")
        assert names == {"level_upgrade", "back_to_normal"} | ({"weather_warning"} if weather
                                                               else set())


@pytest.mark.parametrize("code", SCENARIOS)
def test_scenario_follows_its_handbook_data(code: str) -> None:
    book = handbook(code)
    version = compiled(book["process_id"])
    for step in book["special_steps"]:
        fields = version.form_fields(book["process_id"], f"Activity_{step['id']}")
        assert [f.id for f in fields] == [f["id"] for f in step["form"]]
    closure = {f.id: f for f in version.form_fields("common_closure", "Activity_feedback")}
    causes = {c["code"] for c in book["cancellation"]["causes"]}
    assert causes <= {o.id for o in closure["cause_category"].options}
    cancel = {f.id: f for f in version.form_fields("common_closure", "Activity_cancel_warning")}
    assert causes <= {o.id for o in cancel["cancel_cause"].options}
    extra = {f.id for f in version.form_fields(book["process_id"], "Activity_scenario_feedback")}
    asked = set(closure) | extra | {f["id"] for s in book["special_steps"] for f in s["form"]}
    assert {f["id"] for f in book["feedback_fields"]} <= asked


def test_shared_rules_are_written_once_and_called_in_one_line() -> None:
    """A rule all handbooks share lives in workflows.rules; a BPMN script that is the same in
    several files is a one-line call, never a pasted copy of the rule."""
    from workflows.rules import RULES

    seen: Counter[str] = Counter()
    for path in PROCESS_FILES.values():
        for script in etree.parse(str(path)).getroot().iter(f"{{{NS['bpmn']}}}script"):
            seen[(script.text or "").strip()] += 1
    repeated = {text: n for text, n in seen.items() if n > 2}
    assert repeated, "the scenario files share no script at all"
    for text in repeated:
        assert "\n" not in text, f"a script copied into {repeated[text]} files: {text[:80]}"
    called = {m[1] for text in seen if (m := re.match(r"^([a-z_]+)\(.*\)$", text))}
    assert {"register_case", "grade_and_push", "sync_case_updates", "apply_level_upgrade",
            "record_back_to_normal", "track_overdue", "schedule_accept"} <= called <= set(RULES)
    assert not any("level_limits" in text for text in seen)


# -- running the scenarios -----------------------------------------------------------------------

@pytest.mark.parametrize("code", SCENARIOS)
def test_happy_path_closes_the_case(code: str, case_clock: FixedClock) -> None:
    item, level = happy_choice(code)
    case = open_case(code, case_clock)
    assess(case, level)
    finish(case)
    expected = ["Activity_assessment", "Activity_accept", *steps_for(code, item, level),
                "Activity_dispose", *scenario_feedback(code), *CLOSURE]
    assert case.user_tasks == expected
    assert case.completed[-1] == "Event_closed"
    data = case.data
    assert data["pushed"] is True and data["level"] == level and data["verified"] == "approve"


@pytest.mark.parametrize("code", SCENARIOS)
def test_major_risk_takes_the_expert_level(code: str, case_clock: FixedClock) -> None:
    low, high = upgrade_levels(code)
    item = next(i["code"] for i in handbook(code)["warning_items"] if low in i["thresholds"])
    case = open_case(code, case_clock, item, low)
    case.complete("Activity_assessment", verdict="confirmed", level=low, major_risk=True)
    case.complete("Activity_expert_assessment", expert_level=high, evolution="可能扩大",
                  impact_scope="周边道路", risk_measures="扩大警戒范围")
    assert case.ready() == ["Activity_accept"]
    assert case.data["level"] == high and case.data["pushed_level"] == high
    assert case.data["accept_limit"] == start_data(code, item, high)["accept_limit"]


def test_refused_order_is_supervised_and_closure_returns_are_bounded(
        case_clock: FixedClock) -> None:
    case = open_case("gas", case_clock)
    assess(case, happy_choice("gas")[1])
    case.complete("Activity_accept", accepted=False, accept_note="不属本单位")
    assert case.ready() == ["Activity_supervise"]
    case.complete("Activity_supervise", supervision_note="改派", reassign_to="u9")
    case.complete("Activity_accept", accepted=True)
    while case.ready() != ["Activity_dispose"]:
        case.complete(case.ready()[0])
    case.complete("Activity_dispose", escalate="none")
    while case.ready() != ["Activity_verify"]:
        case.complete(case.ready()[0])
    case.complete("Activity_verify", verified="return", verify_note="照片不清晰")
    assert case.ready() == ["Activity_feedback"]
    for _ in range(3):
        case.complete("Activity_feedback")
        case.complete("Activity_verify", verified="return")
    assert case.instance.finished and "Event_closure_return_limit" in case.completed
    assert case.completed[-1] == "Event_closed"


@pytest.mark.parametrize("code", SCENARIOS)
@pytest.mark.parametrize("verdict", ["false_alarm", "device_fault"])
def test_false_alarm_is_archived(code: str, verdict: str, case_clock: FixedClock) -> None:
    case = open_case(code, case_clock)
    assess(case, happy_choice(code)[1], verdict)
    assert case.instance.finished and case.completed[-1] == "Event_closed_false_alarm"
    assert case.data["outcome"] == verdict and case.instance.next_timer_due() is None


@pytest.mark.parametrize("code", SCENARIOS)
def test_missed_accept_reminds_escalates_supervises_then_big_loop(
        code: str, case_clock: FixedClock) -> None:
    item, level = happy_choice(code)
    case = open_case(code, case_clock)
    limits = start_data(code, item, level)["limits"][level]
    accept = seconds(limits["accept_limit"])
    every = seconds(limits["reminder_cycle"].split("/")[-1])
    escalate, supervise = seconds(limits["escalate_after"]), seconds(limits["supervise_after"])
    assess(case, level)
    assert case.ready() == ["Activity_accept"]

    def at(offset: int) -> None:
        moment = T0 + timedelta(seconds=offset + 1)
        case.clock.set(max(moment, case.clock.now()))
        case._record(case.instance.fire_timers())

    at(accept - 2)
    assert Counter(case.completed)["Activity_remind_responder"] == 0
    at(accept)
    assert Counter(case.completed)["Activity_remind_responder"] == 1
    at(accept + every)
    assert Counter(case.completed)["Activity_remind_responder"] == 2
    at(escalate)
    assert Counter(case.completed)["Activity_remind_department_head"] == 1
    assert case.ready() == ["Activity_accept"]
    at(supervise)
    assert case.ready() == ["Activity_supervise"]
    for _ in range(2):
        if case.ready() == ["Activity_supervise"]:
            case.complete("Activity_supervise", supervision_note="请立即接单", reassign_to="u2")
        assert case.ready() == ["Activity_accept"]
        case.advance(seconds=supervise + 1)
    assert Counter(case.completed)["Activity_count_supervision"] == 3
    assert case.ready() == ["Activity_convene"]        # two supervisions failed: big loop
    finish(case)
    assert case.user_tasks[-3:] == CLOSURE and case.completed[-1] == "Event_closed"
    # An auditor's replay of the recorded inputs reaches exactly the stored state.
    replayed = verify_replay(Runtime(clock=FixedClock(T0)), case.version, case.inputs,
                             case.instance.dump())
    assert replayed.finished


@pytest.mark.parametrize("code", SCENARIOS)
def test_big_loop_runs_one_task_per_department_and_returns(code: str,
                                                           case_clock: FixedClock) -> None:
    case = open_case(code, case_clock)
    assess(case, happy_choice(code)[1])
    case.complete("Activity_accept", accepted=True)
    while case.ready() != ["Activity_dispose"]:
        case.complete(case.ready()[0])
    case.complete("Activity_dispose", escalate="big", escalate_reason="需要多部门联动")
    case.complete("Activity_convene", involved_departments="区建交委, fire，city_ops")
    assert case.ready() == ["Activity_department_disposal_construction",
                            "Activity_department_disposal_fire", "Activity_town_coordination"]
    tasks = {t.element_id: t for t in case.instance.ready_human_tasks()}
    assert tasks["Activity_department_disposal_fire"].properties == {"department": "fire"}
    for element_id in case.ready():
        case.complete(element_id)
    for element_id in ("Activity_joint_disposal", "Activity_report_leader",
                       "Activity_close_big_loop"):
        assert case.ready() == [element_id]
        case.complete(element_id)
    finish(case)
    assert case.user_tasks[-3:] == CLOSURE and case.completed[-1] == "Event_closed"
    assert case.data["involved_departments"] == ["construction", "fire", "city_ops"]
    assert case.data["big_loop_result"]


@pytest.mark.parametrize("code", SCENARIOS)
def test_medium_loop_is_coordinated_by_the_department_head(code: str,
                                                           case_clock: FixedClock) -> None:
    case = open_case(code, case_clock)
    assess(case, happy_choice(code)[1])
    case.complete("Activity_accept", accepted=True)
    while case.ready() != ["Activity_dispose"]:
        case.complete(case.ready()[0])
    case.complete("Activity_dispose", escalate="medium")
    assert case.ready() == ["Activity_medium_loop"]
    finish(case)
    assert case.completed[-1] == "Event_closed"


@pytest.mark.parametrize("code", SCENARIOS)
def test_level_upgrade_changes_level_and_limits(code: str, case_clock: FixedClock) -> None:
    low, high = upgrade_levels(code)
    item = next(i["code"] for i in handbook(code)["warning_items"] if low in i["thresholds"])
    case = open_case(code, case_clock, item, low)
    limits = start_data(code, item, low)["limits"]
    assess(case, low)
    case.message("level_upgrade", {"level": high, "value": 99.5})
    assert "Activity_apply_level_upgrade" in case.completed
    assert case.ready() == ["Activity_accept"]
    case.complete("Activity_accept", accepted=True)
    data = case.data
    assert data["level"] == high and data["value"] == 99.5
    for name in ("accept_limit", "on_site_limit", "feedback_limit", "close_limit",
                 "escalate_after"):
        assert data[name] == limits[high][name], name
    assert data["reminder_cycle"].endswith(limits[high]["reminder_cycle"].split("/")[-1])
    case.message("level_upgrade", {"level": low})           # not an upgrade: level stays
    while case.ready() != ["Activity_dispose"]:
        case.complete(case.ready()[0])
    assert case.data["level"] == high
    due = {w.element_id: w.due for w in case.instance.waiting_events()}
    on_site = seconds(limits[high]["on_site_limit"])
    assert due["Event_on_site_overdue"] == case.clock.now() + timedelta(seconds=on_site)
    finish(case)
    assert case.completed[-1] == "Event_closed" and case.data["level"] == high


@pytest.mark.parametrize("code", SCENARIOS)
def test_back_to_normal_and_overdue_tracking(code: str, case_clock: FixedClock) -> None:
    low, high = upgrade_levels(code)
    item = next(i["code"] for i in handbook(code)["warning_items"] if low in i["thresholds"])
    case = open_case(code, case_clock, item, low)
    assess(case, high)                       # assessed more severe than the alarm said
    case.message("back_to_normal", {"value": 0.0})
    assert case.data["level"] == high        # the latest step shows the case's level
    case.complete("Activity_accept", accepted=True)
    assert case.data["back_to_normal"] is True and case.data["normal_value"] == 0.0
    due = seconds(start_data(code, item, low)["close_limit"])
    case.clock.set(T0 + timedelta(seconds=due + 1))
    case._record(case.instance.fire_timers())
    assert Counter(case.completed)["Activity_tracking_reminder"] == 1
    assert case.data["level"] == high
    finish(case)
    assert case.completed[-1] == "Event_closed" and case.instance.next_timer_due() is None


def test_level_upgrade_reads_limits_keyed_by_handbook_names(case_clock: FixedClock) -> None:
    data = start_data("gas", "GAS-CH4-MANHOLE", "blue")
    book = handbook("gas")
    data["limits"] = {lv: {"accept": lim["accept"], "on_site": lim["on_site"],
                           "feedback": lim["feedback"], "close": lim["close"],
                           "reminder_every": "PT1M", "escalate_after": "PT7M"}
                      for lv, lim in book["time_limits"].items()}
    case = Case("scenario_gas", data, case_clock)
    assess(case, "blue")
    case.message("level_upgrade", {"level": "red", "value": 60.0})
    case.complete("Activity_accept", accepted=True)
    red = book["time_limits"]["red"]
    assert (case.data["level"], case.data["accept_limit"]) == ("red", red["accept"])
    assert case.data["on_site_limit"] == red["on_site"]
    assert case.data["escalate_after"] == "PT7M"
    assert case.data["reminder_cycle"] == "R3/PT1M"
    finish(case)
    assert case.completed[-1] == "Event_closed"


@pytest.mark.parametrize("code", ["flood_typhoon", "rain_snow_ice"])
def test_weather_warning_is_recorded_and_upgrades_a_lower_case(code: str,
                                                               case_clock: FixedClock) -> None:
    low, high = upgrade_levels(code)
    item = next(i["code"] for i in handbook(code)["warning_items"] if low in i["thresholds"])
    case = open_case(code, case_clock, item, low)
    assess(case, low)
    case.message("weather_warning", {"warning_type": "rainstorm", "level": low, "area": "local"})
    assert "Activity_weather_level_upgrade" not in case.completed
    case.message("weather_warning", {"warning_type": "typhoon", "level": high,
                                     "area": "district_wide"})
    assert "Activity_weather_level_upgrade" in case.completed
    case.complete("Activity_accept", accepted=True)
    assert case.data["level"] == high
    assert [w["warning_type"] for w in case.data["weather_warnings"]] == ["rainstorm", "typhoon"]
    finish(case)
    assert case.completed[-1] == "Event_closed"


def test_elevator_rescue_has_the_statutory_30_minutes(case_clock: FixedClock) -> None:
    case = open_case("elevator", case_clock, "ELEV-ENTRAPMENT", "red")
    assess(case, "red")
    case.complete("Activity_accept", accepted=True)
    assert case.ready() == ["Activity_rescue_trapped"]
    due = {w.element_id: w.due for w in case.instance.waiting_events()}
    assert due["Event_rescue_trapped_deadline"] == T0 + timedelta(minutes=30)
    case.clock.set(T0 + timedelta(minutes=30, seconds=1))
    case._record(case.instance.fire_timers())
    assert "Activity_rescue_trapped_overdue" in case.completed
    props = properties("scenario_elevator")["Activity_rescue_trapped_overdue"]
    assert "leader_in_charge" in props["notify"].split(",")
    finish(case)
    assert case.completed[-1] == "Event_closed"


# -- warning publication --------------------------------------------------------------------------

def draft(case: Case, area: str) -> None:
    case.complete("Activity_draft_warning", warning_type="typhoon", level="orange", area=area,
                  towns=None if area == "district_wide" else "town.02",
                  content="预计今夜有台风影响", effective_at="2026-07-26T18:00:00+08:00",
                  effective_until="2026-07-27T06:00:00+08:00")


def test_district_wide_warning_is_verified_before_publication(case_clock: FixedClock) -> None:
    case = Case("warning_publication", {}, case_clock)
    draft(case, "district_wide")
    case.complete("Activity_verify_warning", verified="return", verify_note="范围需调整")
    draft(case, "district_wide")
    case.complete("Activity_verify_warning", verified="approve")
    assert case.instance.finished and case.completed[-1] == "Event_published"
    assert case.user_tasks == ["Activity_draft_warning", "Activity_verify_warning"] * 2
    assert case.data["broadcast"] == {"warning_type": "typhoon", "level": "orange",
                                      "area": "district_wide", "towns": None,
                                      "effective_at": "2026-07-26T18:00:00+08:00",
                                      "effective_until": "2026-07-27T06:00:00+08:00"}


def test_local_warning_is_published_without_verification(case_clock: FixedClock) -> None:
    case = Case("warning_publication", {}, case_clock)
    draft(case, "local")
    assert case.instance.finished and case.completed[-1] == "Event_published"
    assert case.user_tasks == ["Activity_draft_warning"] and case.data["published"] is True


def test_warning_returned_too_often_is_not_published(case_clock: FixedClock) -> None:
    case = Case("warning_publication", {}, case_clock)
    for _ in range(4):
        draft(case, "regional")
        case.complete("Activity_verify_warning", verified="return")
    assert case.instance.finished and case.completed[-1] == "Event_not_published"
