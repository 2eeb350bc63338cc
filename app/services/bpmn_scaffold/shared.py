"""The shared sub-processes every scenario handbook calls (bpmn/shared/*.bpmn)."""

from __future__ import annotations

from collections.abc import Mapping

from . import scripts
from .build import (
    LEVELS,
    SYSTEM,
    choice,
    end,
    flag,
    gateway,
    lane,
    lane_id,
    moment,
    notify,
    number,
    script,
    start,
    text,
    textarea,
    timer,
    upload,
    user,
)
from .handbook_input import (
    Handbook,
    cancellation_causes,
    feedback_field_specs,
    form_field,
    load_handbooks,
)
from .model import Definitions, Escalation, FormField, Process

MAX_SUPERVISIONS = 2
MAX_RETURNS = 3
BIG_LOOP_ESCALATION = Escalation("Escalation_big_loop", "提请大闭环", "big_loop")

# Units that may be drawn into a big loop, each with its own disposal task. 应急管理局 leads and
# 城运中心 coordinates the towns in their own lanes; 区安委办 oversees and is not a disposal unit.
BIG_LOOP_DEPARTMENTS: dict[str, str] = {
    "emergency": "应急管理局",
    "construction": "区建交委",
    "ecology": "区生态环境局",
    "development": "区发改委",
    "public_security": "浦东公安分局",
    "market": "区市场监管局",
    "meteorology": "区气象局",
    "fire": "浦东消防救援支队",
    "power": "浦东供电公司",
    "lingang": "临港新片区管委会",
}

# The feedback fields every handbook shares; the closure asks for these, a scenario asks for its
# own further fields in its process.
COMMON_FEEDBACK_IDS = (
    "cause_category", "arrived_at", "completed_at", "location", "people_on_site",
    "measures_taken", "casualties", "remaining_risk", "remaining_risk_note", "photos",
    "help_needed",
)
DEFAULT_CAUSES = (
    ("device_fault", "设备故障"), ("false_alarm", "误报"), ("hazard_removed", "险情已排除"),
    ("maintenance_test", "设备调试或维保"), ("weather", "天气影响"), ("other", "其他"),
)
DEFAULT_FEEDBACK: dict[str, FormField] = {
    "arrived_at": moment("arrived_at", "到场时间", required=True),
    "completed_at": moment("completed_at", "处置完成时间", required=True),
    "location": text("location", "处置位置", required=True),
    "people_on_site": number("people_on_site", "到场处置人数", required=True, min=None),
    "measures_taken": textarea("measures_taken", "已采取的措施", required=True),
    "casualties": number("casualties", "伤亡人数", required=True, min=None),
    "remaining_risk": choice("remaining_risk", "遗留风险", (
        ("none", "无遗留风险"), ("monitoring", "需持续监测"), ("unresolved", "风险尚未消除"))),
    "remaining_risk_note": textarea("remaining_risk_note", "遗留风险说明"),
    "photos": upload("photos", "现场照片", required=True),
    "help_needed": flag("help_needed", "是否需要其他部门支援"),
}


def common_assessment() -> Definitions:
    p = Process("common_assessment", "研判", "研判", [lane("business_admin")],
                documentation="报警接入后由业务管理员研判:排除误报和设备故障,确定预警等级,"
                              "判断是否属于重大风险(第十条)。")
    ba = lane_id("business_admin")
    start(p, "Event_assessment_start", "开始研判", ba, 0)
    user(p, "Activity_assessment", "研判", "business_admin", 1, properties=(("step", "assessment"),), doc=(
        "核实报警信息(监测值、点位、视频或现场反馈),判定是否为误报或设备故障;确认预警的,"
        "按指挥手册的分级标准核定预警等级(不选则沿用报警等级),并判断是否属于需要专家研判"
        "的重大风险。"),
        fields=(
            choice("verdict", "研判结论", (("confirmed", "确认预警"), ("false_alarm", "误报"),
                                       ("device_fault", "设备故障"))),
            choice("level", "预警等级(不选则沿用报警等级)", LEVELS, required=False),
            flag("major_risk", "重大风险(需专家研判)", default=False),
            textarea("assessment_note", "研判意见"),
        ))
    end(p, "Event_assessed", "研判完成", ba, 2)
    p.connect("Event_assessment_start", "Activity_assessment")
    p.connect("Activity_assessment", "Event_assessed")
    return Definitions("Definitions_common_assessment", [p])


def expert_assessment() -> Definitions:
    p = Process("expert_assessment", "专家研判", "专家研判", [lane("business_admin")],
                documentation="重大风险事项组织专家研判预警级别、事态演变、影响范围和风险防范措施"
                              "(第十条)。")
    ba = lane_id("business_admin")
    start(p, "Event_expert_start", "开始专家研判", ba, 0)
    user(p, "Activity_expert_assessment", "专家研判", "business_admin", 1, doc=(
        "组织专家对重大风险进行研判,记录专家意见:预警级别、事态可能的演变、影响范围和"
        "风险防范措施。研判确定的级别将作为推送级别。"),
        fields=(
            text("expert_panel", "参与专家"),
            choice("expert_level", "专家研判级别", LEVELS),
            textarea("evolution", "事态演变", required=True),
            textarea("impact_scope", "影响范围", required=True),
            textarea("risk_measures", "风险防范措施", required=True),
        ))
    end(p, "Event_expert_done", "专家研判完成", ba, 2)
    p.connect("Event_expert_start", "Activity_expert_assessment")
    p.connect("Activity_expert_assessment", "Event_expert_done")
    return Definitions("Definitions_expert_assessment", [p])


def common_accept() -> Definitions:
    p = Process("common_accept", "接单受理", "接单受理",
                [lane("responder"), lane("leader_in_charge"), lane("system")],
                documentation="处置人员在时限内接单;超过时限后按周期提醒处置人员,再提醒部门"
                              "责任人,最后由分管责任人督办改派;两次督办后仍未接单的,提请大"
                              "闭环。")
    responder = lane_id("responder")
    start(p, "Event_accept_start", "工单推送", responder, 0)
    script(p, "Activity_prepare_accept", "开始计数", 1, code=scripts.PREPARE_ACCEPT)
    gateway(p, "Gateway_accept_merge", "", responder, 2)
    script(p, "Activity_schedule_accept", "计算接单时限", 3, code=scripts.SCHEDULE_ACCEPT)
    accept = user(p, "Activity_accept", "接单受理", "responder", 4, properties=(("step", "accept"),), doc=(
        "查看预警工单(事项、等级、点位、监测值),确认由本人负责处置并接单,填写预计到场时间。"
        "不属于本单位职责的,选择不接单并说明原因,工单将由分管责任人督办改派。"),
        fields=(
            flag("accepted", "接单", default=True),
            number("eta_minutes", "预计到场(分钟)", max=1440),
            textarea("accept_note", "接单说明", maxlength=500),
        ))
    accept.width = 140
    timer(p, "Event_accept_reminder", "超时提醒", "Activity_accept", "timeCycle",
          "reminder_cycle", slot=0)
    timer(p, "Event_accept_escalation", "上报部门", "Activity_accept", "timeDuration",
          "escalate_after", slot=1)
    timer(p, "Event_accept_overdue", "转入督办", "Activity_accept", "timeDuration",
          "supervise_after", slot=2, interrupting=True)
    script(p, "Activity_remind_responder", "提醒处置人员接单", 5, 0, code=scripts.REMINDED,
           properties=notify("responder", "reminder"))
    end(p, "Event_responder_reminded", "已提醒", SYSTEM, 6, 0)
    script(p, "Activity_remind_department_head", "提醒部门责任人", 5, 1, code=scripts.REMINDED,
           properties=notify("department_head", "escalation"))
    end(p, "Event_department_head_reminded", "已上报", SYSTEM, 6, 1)
    gateway(p, "Gateway_accepted", "是否接单", responder, 7, default="Flow_not_accepted")
    end(p, "Event_accepted", "已接单", responder, 8)
    script(p, "Activity_count_supervision", "发起督办", 7, 2, code=scripts.COUNT_SUPERVISION,
           properties=notify("leader_in_charge,department_head", "supervision"))
    gateway(p, "Gateway_supervision_round", "督办次数", SYSTEM, 8, 2,
            default="Flow_supervision_exhausted")
    user(p, "Activity_supervise", "督办改派", "leader_in_charge", 9, doc=(
        "该预警工单超时未接单或被拒接。请督促原处置人员接单,或改派给其他处置人员(填写改派"
        "对象),并填写督办意见。督办两次后仍未接单的,将提请应急管理局启动大闭环。"),
        fields=(
            textarea("supervision_note", "督办意见", required=True, maxlength=1000),
            text("reassign_to", "改派给(用户名)", maxlength=100),
        ))
    end(p, "Event_escalate_big_loop", "提请大闭环", SYSTEM, 9, 2,
        escalation=BIG_LOOP_ESCALATION.id)

    p.connect("Event_accept_start", "Activity_prepare_accept")
    p.connect("Activity_prepare_accept", "Gateway_accept_merge")
    p.connect("Gateway_accept_merge", "Activity_schedule_accept", route="enter_top")
    p.connect("Activity_schedule_accept", "Activity_accept")
    p.connect("Activity_accept", "Gateway_accepted")
    p.connect("Gateway_accepted", "Event_accepted", name="已接单", condition="accepted")
    p.connect("Gateway_accepted", "Activity_count_supervision", name="不接单",
              flow_id="Flow_not_accepted")
    p.connect("Event_accept_reminder", "Activity_remind_responder")
    p.connect("Activity_remind_responder", "Event_responder_reminded")
    p.connect("Event_accept_escalation", "Activity_remind_department_head")
    p.connect("Activity_remind_department_head", "Event_department_head_reminded")
    p.connect("Event_accept_overdue", "Activity_count_supervision")
    p.connect("Activity_count_supervision", "Gateway_supervision_round")
    p.connect("Gateway_supervision_round", "Activity_supervise", name="督办",
              condition=f"supervision_round <= {MAX_SUPERVISIONS}")
    p.connect("Gateway_supervision_round", "Event_escalate_big_loop", name="两次督办未果",
              flow_id="Flow_supervision_exhausted")
    p.connect("Activity_supervise", "Gateway_accept_merge", route="over", via=0.08,
              via_lane=responder)
    return Definitions("Definitions_common_accept", [p], escalations=[BIG_LOOP_ESCALATION])


def closure_fields(handbooks: Mapping[str, Handbook]) -> tuple[
        tuple[tuple[str, str], ...], tuple[FormField, ...]]:
    """The cancellation causes (a superset of every handbook's) and the common feedback fields
    as the handbooks define them."""
    causes = cancellation_causes(handbooks) or DEFAULT_CAUSES
    specs = feedback_field_specs(handbooks)
    fields = []
    for field_id in COMMON_FEEDBACK_IDS:
        if field_id == "cause_category":
            label = specs[field_id]["label"] if field_id in specs else "原因分类"
            fields.append(choice(field_id, label, causes))
        elif field_id in specs:
            fields.append(form_field(specs[field_id]))
        else:
            fields.append(DEFAULT_FEEDBACK[field_id])
    return causes, tuple(fields)


def common_closure(handbooks: Mapping[str, Handbook] | None = None) -> Definitions:
    """`handbooks` (scenario code -> handbook data) default to the files on disk."""
    causes, feedback = closure_fields(load_handbooks() if handbooks is None else handbooks)
    p = Process("common_closure", "销警与闭环", "销警与闭环",
                [lane("responder"), lane("department_head"), lane("system")],
                documentation="处置人员销警并闭环反馈,部门责任人核查;核查退回的重新反馈,"
                              "最多退回三次。")
    responder, head = lane_id("responder"), lane_id("department_head")
    start(p, "Event_closure_start", "开始销警", responder, 0)
    script(p, "Activity_prepare_closure", "准备闭环", 1, code=scripts.PREPARE_CLOSURE)
    user(p, "Activity_cancel_warning", "销警", "responder", 2, properties=(("step", "cancel"),), doc=(
        "风险消除后销警:选择销警原因,上传证明材料(现场照片、检测记录等),填写销警时间。"),
        fields=(
            choice("cancel_cause", "销警原因", causes),
            upload("evidence", "证明材料", required=True),
            textarea("cancel_note", "销警说明", maxlength=1000),
            moment("cancelled_at", "销警时间", required=True),
        ))
    gateway(p, "Gateway_feedback_merge", "", responder, 3)
    user(p, "Activity_feedback", "闭环反馈", "responder", 4, properties=(("step", "feedback"),), doc=(
        "填写闭环反馈:原因分类、处置位置、到场人数、到场和完成时间、已采取的措施、伤亡人数、"
        "遗留风险,并上传现场照片。存在遗留风险的,在说明中写明后续管控安排;部门责任人核查时"
        "据此决定是否退回,风险尚未消除且需其他部门支援的,可另行提请大闭环。"),
        fields=feedback)
    timer(p, "Event_feedback_reminder", "反馈超时", "Activity_feedback", "timeDuration",
          "feedback_limit", slot=1)
    script(p, "Activity_remind_feedback", "提醒闭环反馈", 4, 1, code=scripts.REMINDED,
           properties=notify("responder,department_head", "reminder"))
    end(p, "Event_feedback_reminded", "已提醒", SYSTEM, 5, 1)
    user(p, "Activity_verify", "核查", "department_head", 5, properties=(("step", "verify"),), doc=(
        "核查销警依据和闭环反馈是否完整、真实、符合逻辑(如到场时间不应晚于完成时间)。"
        "通过则归档;内容缺失或不规范的退回处置人员重新反馈,并写明退回原因。"),
        fields=(
            choice("verified", "核查结果", (("approve", "通过"), ("return", "退回"))),
            textarea("verify_note", "核查意见", maxlength=1000),
        ))
    gateway(p, "Gateway_verified", "核查结果", head, 6, default="Flow_verify_approved")
    end(p, "Event_closure_verified", "核查通过", head, 8)
    script(p, "Activity_count_return", "记录退回", 6, 0, code=scripts.COUNT_RETURN)
    gateway(p, "Gateway_return_round", "退回次数", SYSTEM, 7, 0,
            default="Flow_return_exhausted")
    end(p, "Event_closure_return_limit", "退回超限待复核", SYSTEM, 8, 0)

    p.connect("Event_closure_start", "Activity_prepare_closure")
    p.connect("Activity_prepare_closure", "Activity_cancel_warning")
    p.connect("Activity_cancel_warning", "Gateway_feedback_merge")
    p.connect("Gateway_feedback_merge", "Activity_feedback")
    p.connect("Activity_feedback", "Activity_verify")
    p.connect("Event_feedback_reminder", "Activity_remind_feedback")
    p.connect("Activity_remind_feedback", "Event_feedback_reminded")
    p.connect("Activity_verify", "Gateway_verified")
    p.connect("Gateway_verified", "Event_closure_verified", name="通过",
              flow_id="Flow_verify_approved")
    p.connect("Gateway_verified", "Activity_count_return", name="退回",
              condition="verified == 'return'")
    p.connect("Activity_count_return", "Gateway_return_round")
    p.connect("Gateway_return_round", "Gateway_feedback_merge", name="重新反馈",
              condition=f"verify_round <= {MAX_RETURNS}", route="over", via=0.08,
              via_lane=responder)
    p.connect("Gateway_return_round", "Event_closure_return_limit", name="超过三次",
              flow_id="Flow_return_exhausted")
    return Definitions("Definitions_common_closure", [p])


def big_loop() -> Definitions:
    p = Process("big_loop", "大闭环", "大闭环(应急管理局牵头)",
                [lane("emergency"), lane("city_ops"), lane("departments"),
                 lane("leader_in_charge"), lane("system")],
                documentation="跨部门的大闭环:应急管理局召集相关部门,城运中心协调属地街镇,"
                              "各部门并行处置后联合处置,报告分管领导后结案。")
    emergency = lane_id("emergency")
    departments = lane_id("departments")
    start(p, "Event_big_loop_start", "提请大闭环", emergency, 0)
    user(p, "Activity_convene", "召集", "emergency", 1, doc=(
        "研究案情,确定需要参与处置的部门,填写部门代码或名称(以逗号分隔,如 construction,"
        "fire 或 区建交委,浦东消防救援支队),并说明召集事由。城运中心同时协调属地街镇。"),
        fields=(
            text("involved_departments", "参与部门", required=True, maxlength=500),
            textarea("convene_note", "召集事由", required=True),
        ))
    script(p, "Activity_resolve_departments", "确定参与部门", 2,
           code=scripts.resolve_departments(BIG_LOOP_DEPARTMENTS),
           properties=notify("leader_in_charge,department_head", "escalation"))
    gateway(p, "Gateway_big_loop_fork", "", emergency, 3, kind="parallelGateway")
    user(p, "Activity_town_coordination", "街镇联动", "city_ops", 5, doc=(
        "协调案件所在街镇分平台和居村微平台开展属地处置(人员疏散、现场管控、信息报送),"
        "填写属地处置情况。"),
        fields=(
            textarea("town_measures", "属地处置情况", required=True),
            number("town_people", "属地出动人数", max=10000),
        ))
    gateway(p, "Gateway_departments_split", "参与部门", departments, 4,
            kind="inclusiveGateway", default="Flow_no_department")
    gateway(p, "Gateway_departments_join", "", departments, 6, kind="inclusiveGateway")
    for index, (code, name) in enumerate(BIG_LOOP_DEPARTMENTS.items(), start=1):
        user(p, f"Activity_department_disposal_{code}", f"{name}处置", "departments", 5, index,
             doc=(f"{name}按大闭环召集要求开展本部门职责范围内的处置,填写措施、出动人数和"
                  "完成时间。"),
             fields=(
                 textarea(f"{code}_measures", "本部门处置措施", required=True),
                 number(f"{code}_people", "出动人数", max=10000),
                 moment(f"{code}_finished_at", "完成时间"),
             ),
             properties=(("department", code),))
        p.connect("Gateway_departments_split", f"Activity_department_disposal_{code}",
                  name=name, condition=f"'{code}' in involved_departments")
        p.connect(f"Activity_department_disposal_{code}", "Gateway_departments_join")
    gateway(p, "Gateway_big_loop_join", "", emergency, 7, kind="parallelGateway")
    user(p, "Activity_joint_disposal", "联合处置", "emergency", 8, doc=(
        "汇总各部门和属地的处置情况,组织联合处置,直至风险得到控制;填写联合处置措施和伤亡"
        "情况。"),
        fields=(
            textarea("joint_measures", "联合处置措施", required=True),
            number("casualties", "伤亡人数", max=100000),
            moment("joint_finished_at", "处置完成时间"),
        ))
    user(p, "Activity_report_leader", "报告分管领导", "leader_in_charge", 9, doc=(
        "听取大闭环处置情况报告,作出指示。"),
        fields=(textarea("leader_instruction", "领导指示", required=True),))
    user(p, "Activity_close_big_loop", "大闭环结案", "emergency", 10, doc=(
        "落实分管领导指示,填写大闭环处置结果并结案;原场景流程随后继续销警和闭环反馈。"),
        fields=(textarea("big_loop_result", "大闭环处置结果", required=True),))
    end(p, "Event_big_loop_closed", "大闭环结案", emergency, 11)

    p.connect("Event_big_loop_start", "Activity_convene")
    p.connect("Activity_convene", "Activity_resolve_departments")
    p.connect("Activity_resolve_departments", "Gateway_big_loop_fork", route="up")
    p.connect("Gateway_big_loop_fork", "Activity_town_coordination", route="down")
    p.connect("Gateway_big_loop_fork", "Gateway_departments_split", route="enter_top")
    p.connect("Gateway_departments_split", "Gateway_departments_join", name="无",
              flow_id="Flow_no_department")
    p.connect("Gateway_departments_join", "Gateway_big_loop_join")
    p.connect("Activity_town_coordination", "Gateway_big_loop_join")
    p.connect("Gateway_big_loop_join", "Activity_joint_disposal")
    p.connect("Activity_joint_disposal", "Activity_report_leader")
    p.connect("Activity_report_leader", "Activity_close_big_loop")
    p.connect("Activity_close_big_loop", "Event_big_loop_closed")
    return Definitions("Definitions_big_loop", [p])


SHARED = {
    "common_assessment": common_assessment,
    "expert_assessment": expert_assessment,
    "common_accept": common_accept,
    "common_closure": common_closure,
    "big_loop": big_loop,
}

