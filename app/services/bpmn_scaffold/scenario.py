"""The scenario handbook process `scenario_<code>` (bpmn/scenario_<code>.bpmn).

Main path: alert -> assessment -> (expert assessment) -> grade and push -> accept -> the
scenario's special steps -> on-site disposal -> small / medium / big loop -> closure. Messages
that arrive while a case runs and overdue tracking are non-interrupting event sub-processes.

Variables the application sets at start: case_no, scenario, item_code, item_name, level, value,
unit, town, point, limits (level -> that level's variables), and the current level's
accept_limit, on_site_limit, feedback_limit, close_limit, escalate_after, reminder_cycle
(`R<n>/<period>`; reminders start once the accept limit has passed) and tracking_cycle
(`R<n>/<overdue moment>/<period>`). Messages: level_upgrade {level, value},
back_to_normal {value}, weather_warning {warning_type, level, area}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import scripts
from .build import (
    SYSTEM,
    call,
    catch_escalation,
    choice,
    end,
    event_subprocess,
    gateway,
    lane,
    lane_id,
    moment,
    notify,
    script,
    start,
    textarea,
    timer,
    user,
)
from .handbook_input import (
    Handbook,
    SpecialStep,
    duration_words,
    form_field,
    load_handbooks,
    measures_text,
    special_steps,
)
from .model import DataReference, Definitions, EventDefinition, Message, Process
from .shared import BIG_LOOP_ESCALATION, COMMON_FEEDBACK_IDS

SCENARIOS: dict[str, str] = {
    "flood_typhoon": "防汛防台", "rain_snow_ice": "雨雪冰冻", "industry_trade": "工贸",
    "hazardous_chemicals": "危化品", "gas": "燃气", "bridge": "桥梁", "utility_tunnel": "综合管廊",
    "construction_site": "建筑施工", "water": "供排水", "forest_fire": "森林防火",
    "oil_gas_pipeline": "油气管道", "traffic": "交通", "crowd": "大客流", "elevator": "电梯",
    "power_supply": "供电",
}
WEATHER_SCENARIOS = frozenset({"flood_typhoon", "rain_snow_ice"})
LEVEL_UPGRADE = Message("Message_level_upgrade", "level_upgrade")
BACK_TO_NORMAL = Message("Message_back_to_normal", "back_to_normal")
WEATHER_WARNING = Message("Message_weather_warning", "weather_warning")

BA, DH, RESPONDER, LEADER = (lane_id(code) for code in (
    "business_admin", "department_head", "responder", "leader_in_charge"))
UPDATES = scripts.CASE_UPDATES


def scenario_definitions(code: str, handbook: Handbook | None = None) -> Definitions:
    """The definitions of `scenario_<code>`; `handbook` defaults to the file on disk."""
    if code not in SCENARIOS:
        raise ValueError(f"unknown scenario {code!r}")
    if handbook is None:
        handbook = load_handbooks().get(code)
    messages = [LEVEL_UPGRADE, BACK_TO_NORMAL]
    if code in WEATHER_SCENARIOS:
        messages.append(WEATHER_WARNING)
    process = _ScenarioBuilder(code, handbook).build()
    return Definitions(f"Definitions_scenario_{code}", [process], messages=messages,
                       escalations=[BIG_LOOP_ESCALATION])


def _reference(process: Process, ref_id: str, col: float, row: float,
               parent: str | None = None) -> str:
    process.references.append(DataReference(ref_id, UPDATES, "案件动态", SYSTEM, col, row,
                                            parent))
    return ref_id


class _ScenarioBuilder:
    def __init__(self, code: str, handbook: Handbook | None):
        self.code = code
        self.name = SCENARIOS[code]
        self.handbook: Mapping[str, Any] = handbook or {}
        self.steps = special_steps(handbook)
        self.p = Process(
            f"scenario_{code}", f"{self.name}预警处置", self.name,
            [lane("business_admin"), lane("department_head"), lane("responder"),
             lane("leader_in_charge"), lane("system")],
            documentation=f"{self.name}场景指挥手册:报警研判、分级推送、接单受理、处置、"
                          "小/中/大闭环、销警和闭环反馈(浦安委办〔2024〕40号第九条、第十条)。")
        self.p.data_objects.append((UPDATES, "案件动态"))

    def build(self) -> Process:
        self._intake()
        self._disposal(self._special_steps(10))
        self._event_subprocesses()
        return self.p

    # -- alert, assessment, push, accept ---------------------------------------------------------

    def _intake(self) -> None:
        p = self.p
        start(p, "Event_alert", "报警接入", BA, 0)
        script(p, "Activity_register", "登记报警", 1, code=scripts.REGISTER,
               writes=(_reference(p, "DataObjectReference_register", 1, 1),))
        call(p, "Activity_call_assessment", "研判", "common_assessment", BA, 2,
             doc="业务管理员研判报警:误报、设备故障或确认预警,确定等级和是否重大风险。")
        gateway(p, "Gateway_verdict", "研判结论", BA, 3, default="Flow_not_confirmed")
        script(p, "Activity_record_false_alarm", "记录研判结果", 4, code=scripts.RECORD_FALSE_ALARM)
        end(p, "Event_closed_false_alarm", "误报归档", SYSTEM, 5, terminate=True)
        gateway(p, "Gateway_major_risk", "重大风险?", BA, 4, default="Flow_no_major_risk")
        call(p, "Activity_call_expert", "专家研判", "expert_assessment", BA, 5, 1,
             doc="重大风险事项组织专家研判(第十条)。")
        gateway(p, "Gateway_expert_merge", "", BA, 6)
        script(p, "Activity_grade_push", "分级推送", 7, code=scripts.GRADE_PUSH,
               reads=(_reference(p, "DataObjectReference_grade_push", 7, 1),),
               writes=("DataObjectReference_grade_push",))
        call(p, "Activity_call_accept", "接单受理", "common_accept", RESPONDER, 8,
             doc="处置人员接单;超时提醒、上报、督办,督办两次未接单的提请大闭环。")
        catch_escalation(p, "Event_accept_big_loop", "提请大闭环", "Activity_call_accept",
                         BIG_LOOP_ESCALATION.id)
        script(p, "Activity_sync_after_accept", "同步案件动态", 9,
               code=scripts.SYNC_AFTER_ACCEPT,
               reads=(_reference(p, "DataObjectReference_sync_after_accept", 9, 1),))

        p.connect("Event_alert", "Activity_register")
        p.connect("Activity_register", "Activity_call_assessment")
        p.connect("Activity_call_assessment", "Gateway_verdict")
        p.connect("Gateway_verdict", "Gateway_major_risk", name="确认预警",
                  condition="verdict == 'confirmed'")
        p.connect("Gateway_verdict", "Activity_record_false_alarm", name="误报/设备故障",
                  flow_id="Flow_not_confirmed")
        p.connect("Activity_record_false_alarm", "Event_closed_false_alarm")
        p.connect("Gateway_major_risk", "Activity_call_expert", name="是", condition="major_risk")
        p.connect("Gateway_major_risk", "Gateway_expert_merge", name="否",
                  flow_id="Flow_no_major_risk")
        p.connect("Activity_call_expert", "Gateway_expert_merge")
        p.connect("Gateway_expert_merge", "Activity_grade_push", route="enter_top")
        p.connect("Activity_grade_push", "Activity_call_accept")
        p.connect("Activity_call_accept", "Activity_sync_after_accept")

    # -- special steps ----------------------------------------------------------------------------

    def _special_steps(self, col: int) -> int:
        """Draw the handbook's special steps from column `col`; return the next free column."""
        previous = "Activity_sync_after_accept"
        for step in self.steps:
            step_lane = lane_id(step.role)
            if step.conditional:
                split = f"Gateway_{step.id}_applies"
                merge = f"Gateway_{step.id}_done"
                gateway(self.p, split, f"需要{step.name}?", step_lane, col,
                        default=f"Flow_{step.id}_skipped")
                self._step(step, col + 1)
                gateway(self.p, merge, "", step_lane, col + 2)
                self._follow(previous, split)
                self.p.connect(split, step.element_id, name="是",
                               condition=self._condition(step))
                self.p.connect(split, merge, name="否", flow_id=f"Flow_{step.id}_skipped",
                               route="over", via=0.08, via_lane=step_lane)
                self.p.connect(step.element_id, merge)
                previous, col = merge, col + 3
            else:
                self._step(step, col)
                self._follow(previous, step.element_id)
                previous, col = step.element_id, col + 1
        self.last_step = previous
        return col

    def _follow(self, previous: str, target: str) -> None:
        """Connect consecutive steps; from a merge into another lane, leave it sideways (its
        top takes the skipping path)."""
        source, goal = self.p.node(previous), self.p.node(target)
        if source.kind.endswith("Gateway") and source.lane != goal.lane:
            order = [lane.id for lane in self.p.lanes]
            below = order.index(goal.lane or "") > order.index(source.lane or "")
            self.p.connect(previous, target, route="enter_top" if below else "enter_bottom")
        else:
            self.p.connect(previous, target)

    @staticmethod
    def _condition(step: SpecialStep) -> str:
        parts = []
        if step.levels:
            parts.append(f"level in {list(step.levels)!r}")
        if step.items:
            parts.append(f"item_code in {list(step.items)!r}")
        return " and ".join(parts)

    def _step(self, step: SpecialStep, col: int) -> None:
        scope = []
        if step.levels:
            scope.append("等级:" + "、".join(step.levels))
        if step.items:
            scope.append("预警事项:" + "、".join(step.items))
        doc = f"按指挥手册完成“{step.name}”,如实填写结果。"
        if scope:
            doc += "适用于" + ";".join(scope) + "。"
        if step.deadline:
            since = "推送" if step.deadline_from == "push" else "接单"
            doc += f"时限:{step.deadline}(自{since}起算)"
            if step.basis:
                doc += f",依据:{step.basis}"
            doc += "。"
        user(self.p, step.element_id, step.name, step.role, col, doc=doc, fields=step.fields)
        if step.deadline:
            unit, amount = duration_words(step.deadline)
            since = "pushed_at" if step.deadline_from == "push" else "accepted_at"
            expression = (f"(parse_datetime({since}) + timedelta({unit}={amount}))"
                          ".isoformat()")
            label = "法定时限" if step.deadline_source == "statutory" else "时限"
            words = {"days": "天", "hours": "小时", "minutes": "分钟", "seconds": "秒"}[unit]
            timer(self.p, f"Event_{step.id}_deadline", f"{label}{amount}{words}",
                  step.element_id, "timeDate", expression)
            script(self.p, f"Activity_{step.id}_overdue", f"{step.name}超时上报", col, 1,
                   code=scripts.REMINDED,
                   properties=notify("leader_in_charge,department_head", "escalation"))
            end(self.p, f"Event_{step.id}_overdue_reported", "已上报", SYSTEM, col, 2)
            self.p.connect(f"Event_{step.id}_deadline", f"Activity_{step.id}_overdue")
            self.p.connect(f"Activity_{step.id}_overdue", f"Event_{step.id}_overdue_reported")

    # -- disposal, loops, closure -----------------------------------------------------------------

    def _disposal(self, d: int) -> None:
        p = self.p
        measures = measures_text(self.handbook)
        doc = ("到场处置:按指挥手册的标准措施处置,填写到场时间和现场情况。一个责任单位即可"
               "处置完毕的选择“无需升级”(小闭环);需本部门协调多个单位或街镇的选择“中闭环”;"
               "需跨部门联动、出现伤亡或请求支援的选择“大闭环”。")
        if measures:
            doc += "\n标准措施:\n" + measures
        user(p, "Activity_dispose", "到场处置", "responder", d, properties=(("step", "dispose"),), doc=doc, fields=(
            moment("on_site_at", "到场时间", required=True),
            textarea("situation", "现场情况及处置", required=True),
            choice("escalate", "是否升级", (("none", "无需升级(小闭环)"), ("medium", "中闭环"),
                                         ("big", "大闭环")), default="none"),
            textarea("escalate_reason", "升级理由", maxlength=1000),
        ))
        timer(p, "Event_on_site_overdue", "到场超时", "Activity_dispose", "timeDuration",
              "on_site_limit")
        script(p, "Activity_remind_on_site", "到场超时提醒", d, 1, code=scripts.REMINDED,
               properties=notify("department_head", "escalation"))
        end(p, "Event_on_site_reminded", "已提醒", SYSTEM, d, 2)
        gateway(p, "Gateway_escalate", "闭环级别", RESPONDER, d + 1, default="Flow_small_loop")
        user(p, "Activity_medium_loop", "中闭环协调", "department_head", d + 2, doc=(
            "协调本部门多个单位或相关街镇共同处置,填写参与单位和协调情况。"), fields=(
            textarea("coordinated_units", "协调单位或街镇", required=True, maxlength=500),
            textarea("coordination_note", "协调情况", required=True),
        ))
        gateway(p, "Gateway_big_loop_merge", "", LEADER, d + 2)
        call(p, "Activity_call_big_loop", "大闭环", "big_loop", LEADER, d + 3,
             doc="应急管理局牵头、城运中心协同的跨部门大闭环。")
        gateway(p, "Gateway_closure_merge", "", RESPONDER, d + 4)
        col = d + 5
        extra = self._scenario_feedback_fields()
        before_sync = "Gateway_closure_merge"
        if extra:
            user(p, "Activity_scenario_feedback", f"{self.name}专项反馈", "responder", col,
                 doc=f"填写{self.name}场景指挥手册要求的专项反馈内容。", fields=extra)
            p.connect("Gateway_closure_merge", "Activity_scenario_feedback")
            before_sync, col = "Activity_scenario_feedback", col + 1
        script(p, "Activity_sync_before_closure", "同步案件动态", col, code=scripts.SYNC_UPDATES,
               reads=(_reference(p, "DataObjectReference_sync_before_closure", col, 1),))
        call(p, "Activity_call_closure", "销警与闭环", "common_closure", RESPONDER, col + 1,
             doc="销警、闭环反馈和部门责任人核查。")
        end(p, "Event_closed", "闭环归档", RESPONDER, col + 2, terminate=True)

        self._follow(self.last_step, "Activity_dispose")
        p.connect("Event_on_site_overdue", "Activity_remind_on_site")
        p.connect("Activity_remind_on_site", "Event_on_site_reminded")
        p.connect("Activity_dispose", "Gateway_escalate")
        p.connect("Gateway_escalate", "Activity_medium_loop", name="中闭环",
                  condition="escalate == 'medium'")
        p.connect("Gateway_escalate", "Gateway_big_loop_merge", name="大闭环",
                  condition="escalate == 'big'")
        p.connect("Gateway_escalate", "Gateway_closure_merge", name="小闭环",
                  flow_id="Flow_small_loop")
        p.connect("Event_accept_big_loop", "Gateway_big_loop_merge", route="under", via=0.92,
                  via_lane=LEADER)
        p.connect("Gateway_big_loop_merge", "Activity_call_big_loop")
        p.connect("Activity_medium_loop", "Gateway_closure_merge")
        p.connect("Activity_call_big_loop", "Gateway_closure_merge")
        p.connect(before_sync, "Activity_sync_before_closure",
                  route="auto" if extra else "enter_top")
        p.connect("Activity_sync_before_closure", "Activity_call_closure")
        p.connect("Activity_call_closure", "Event_closed")

    def _scenario_feedback_fields(self) -> tuple[Any, ...]:
        """Feedback fields of this handbook beyond the common ones the closure asks for, unless
        a special step already asks for them."""
        asked = {f.id for step in self.steps for f in step.fields}
        return tuple(form_field(spec) for spec in self.handbook.get("feedback_fields") or ()
                     if spec["id"] not in COMMON_FEEDBACK_IDS and spec["id"] not in asked)

    # -- event sub-processes --------------------------------------------------------------------

    def _event_subprocesses(self) -> None:
        p = self.p
        event_subprocess(p, "Activity_on_level_upgrade", "预警升级", "Event_level_upgrade",
                         "收到升级", 1, 3,
                         EventDefinition("message", ref=LEVEL_UPGRADE.id,
                                         result_variable="upgrade"))
        parent = "Activity_on_level_upgrade"
        ref = _reference(p, "DataObjectReference_level_upgrade", 2, 4, parent)
        script(p, "Activity_apply_level_upgrade", "更新预警等级和时限", 2, 3,
               code=scripts.APPLY_LEVEL_UPGRADE, reads=(ref,), writes=(ref,), parent=parent,
               properties=notify("responder,department_head,leader_in_charge", "level_upgrade"))
        end(p, "Event_level_upgraded", "已升级", SYSTEM, 3, 3, parent=parent)
        p.connect("Event_level_upgrade", "Activity_apply_level_upgrade")
        p.connect("Activity_apply_level_upgrade", "Event_level_upgraded")

        event_subprocess(p, "Activity_on_back_to_normal", "监测恢复正常", "Event_back_to_normal",
                         "读数恢复", 5, 3,
                         EventDefinition("message", ref=BACK_TO_NORMAL.id,
                                         result_variable="normal"))
        parent = "Activity_on_back_to_normal"
        ref = _reference(p, "DataObjectReference_back_to_normal", 6, 4, parent)
        script(p, "Activity_record_back_to_normal", "记录恢复并提示销警", 6, 3,
               code=scripts.RECORD_BACK_TO_NORMAL, reads=(ref,), writes=(ref,), parent=parent,
               properties=notify("responder,department_head", "back_to_normal"))
        end(p, "Event_back_to_normal_recorded", "已提示", SYSTEM, 7, 3, parent=parent)
        p.connect("Event_back_to_normal", "Activity_record_back_to_normal")
        p.connect("Activity_record_back_to_normal", "Event_back_to_normal_recorded")

        event_subprocess(p, "Activity_on_tracking", "超期跟踪", "Event_tracking", "跟踪周期",
                         9, 3, EventDefinition("timer", timer="timeCycle",
                                               value="tracking_cycle"))
        parent = "Activity_on_tracking"
        ref = _reference(p, "DataObjectReference_tracking", 10, 4, parent)
        script(p, "Activity_tracking_reminder", "超期未结案跟踪提示", 10, 3,
               code=scripts.TRACKING, parent=parent, reads=(ref,),
               properties=notify("department_head", "tracking"))
        end(p, "Event_tracking_sent", "已提示", SYSTEM, 11, 3, parent=parent)
        p.connect("Event_tracking", "Activity_tracking_reminder")
        p.connect("Activity_tracking_reminder", "Event_tracking_sent")

        if self.code in WEATHER_SCENARIOS:
            self._weather_subprocess(13)

    def _weather_subprocess(self, col: int) -> None:
        p = self.p
        parent = "Activity_on_weather_warning"
        event_subprocess(p, parent, "气象预警", "Event_weather_warning", "收到气象预警", col, 3,
                         EventDefinition("message", ref=WEATHER_WARNING.id,
                                         result_variable="warning"))
        ref = _reference(p, "DataObjectReference_weather_record", col + 1, 4, parent)
        script(p, "Activity_record_weather_warning", "记录气象预警", col + 1, 3,
               code=scripts.RECORD_WEATHER_WARNING, reads=(ref,), writes=(ref,), parent=parent,
               properties=notify("responder,department_head", "weather_warning"))
        gateway(p, "Gateway_weather_outranks", "高于当前等级?", SYSTEM, col + 2, 3,
                default="Flow_weather_lower", parent=parent)
        upgrade_ref = _reference(p, "DataObjectReference_weather_upgrade", col + 3, 4, parent)
        script(p, "Activity_weather_level_upgrade", "按气象预警升级", col + 3, 3,
               code=scripts.WEATHER_LEVEL_UPGRADE, reads=(upgrade_ref,), writes=(upgrade_ref,),
               parent=parent,
               properties=notify("responder,department_head,leader_in_charge", "level_upgrade"))
        end(p, "Event_weather_upgraded", "已升级", SYSTEM, col + 4, 3, parent=parent)
        end(p, "Event_weather_recorded", "已记录", SYSTEM, col + 2, 4, parent=parent)
        p.connect("Event_weather_warning", "Activity_record_weather_warning")
        p.connect("Activity_record_weather_warning", "Gateway_weather_outranks")
        p.connect("Gateway_weather_outranks", "Activity_weather_level_upgrade", name="是",
                  condition="weather_outranks")
        p.connect("Gateway_weather_outranks", "Event_weather_recorded", name="否",
                  flow_id="Flow_weather_lower")
        p.connect("Activity_weather_level_upgrade", "Event_weather_upgraded")
