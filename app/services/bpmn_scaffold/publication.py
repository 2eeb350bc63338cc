"""Weather warning publication by 区气象局 (bpmn/warning_publication.bpmn).

Regional and district-wide warnings are verified by 应急管理局 before they are published
(annex, item 1 and 7), never by whoever drafted them; a published warning reaches the running
cases of the scenarios whose handbooks name its type (`weather_warnings`), in its towns, as the
`weather_warning` message.
"""

from __future__ import annotations

from . import scripts
from .build import (
    LEVELS,
    SYSTEM,
    choice,
    end,
    gateway,
    lane,
    lane_id,
    moment,
    notify,
    script,
    start,
    textarea,
    user,
)
from .model import Definitions, FormField, Process

# The Shanghai meteorological warning signals (handbook_schema.WEATHER_WARNING_TYPES).
WARNING_TYPES = (("typhoon", "台风"), ("rainstorm", "暴雨"), ("snowstorm", "暴雪"),
                 ("cold_wave", "寒潮"), ("gale", "大风"), ("thunderstorm_gale", "雷雨大风"),
                 ("sandstorm", "沙尘暴"), ("high_temperature", "高温"), ("drought", "干旱"),
                 ("lightning", "雷电"), ("hail", "冰雹"), ("frost", "霜冻"), ("fog", "大雾"),
                 ("haze", "霾"), ("road_icing", "道路结冰"))
AREAS = (("local", "局地"), ("regional", "区域性"), ("district_wide", "全区"))
MAX_RETURNS = 3


def warning_publication() -> Definitions:
    p = Process("warning_publication", "气象预警发布", "气象预警发布",
                [lane("meteorology"), lane("emergency"), lane("system")],
                documentation="区气象局负责新区预警发布;区域性预警和全域预警由应急管理局参与核定"
                              "(附件一第1、7项)。发布后推送至指挥手册关注该类预警的场景在预警范围内"
                              "的在办案件。起草人不得核定自己起草的预警。")
    meteorology, emergency = lane_id("meteorology"), lane_id("emergency")
    start(p, "Event_warning_start", "拟发预警", meteorology, 0)
    script(p, "Activity_prepare_warning", "登记", 1, code=scripts.PREPARE_WARNING)
    gateway(p, "Gateway_draft_merge", "", meteorology, 2)
    user(p, "Activity_draft_warning", "起草预警", "meteorology", 3, doc=(
        "起草气象预警:选择预警类型、等级和范围,局地和区域性预警勾选涉及的街镇,填写预警内容"
        "(影响时段、区域、防御指引)和有效期。区域性和全区预警须经应急管理局核定后发布。"),
        properties=(("roles", "department_head,business_admin"),),
        fields=(
            choice("warning_type", "预警类型", WARNING_TYPES),
            choice("level", "预警等级", LEVELS),
            choice("area", "发布范围", AREAS),
            FormField("towns", "涉及街镇", "string", maxlength=2000, widget="towns",
                      properties=(("required_unless", "area=district_wide"),)),
            textarea("content", "预警内容", required=True),
            moment("effective_at", "生效时间", required=True),
            FormField("effective_until", "有效期至", "date", required=True, widget="datetime",
                      properties=(("not_before", "effective_at"),)),
        ))
    gateway(p, "Gateway_needs_verification", "需要核定?", meteorology, 4,
            default="Flow_local_warning")
    user(p, "Activity_verify_warning", "核定", "emergency", 5, doc=(
        "核定区域性或全区气象预警的等级、范围和内容是否适当。同意则发布;需修改的退回区气象局"
        "并写明意见(最多退回三次)。由应急管理局部门责任人、业务管理员或分管责任人核定,"
        "起草人不得核定。"),
        properties=(("roles", "department_head,business_admin,leader_in_charge"),
                    ("separate_from", "Activity_draft_warning")),
        fields=(
            choice("verified", "核定意见", (("approve", "同意发布"), ("return", "退回修改"))),
            textarea("verify_note", "核定说明", maxlength=1000),
        ))
    gateway(p, "Gateway_verification", "核定结果", emergency, 6,
            default="Flow_verification_returned")
    script(p, "Activity_count_draft_return", "记录退回", 6, code=scripts.COUNT_DRAFT_RETURN)
    gateway(p, "Gateway_draft_round", "退回次数", SYSTEM, 7, default="Flow_returns_exhausted")
    end(p, "Event_not_published", "未发布", SYSTEM, 8)
    gateway(p, "Gateway_publish_merge", "", meteorology, 8)
    script(p, "Activity_publish", "发布", 9, code=scripts.PUBLISH_WARNING,
           properties=notify("department_head,leader_in_charge", "weather_warning",
                             broadcast_message="weather_warning"))
    end(p, "Event_published", "已发布", SYSTEM, 10)

    p.connect("Event_warning_start", "Activity_prepare_warning")
    p.connect("Activity_prepare_warning", "Gateway_draft_merge")
    p.connect("Gateway_draft_merge", "Activity_draft_warning")
    p.connect("Activity_draft_warning", "Gateway_needs_verification")
    p.connect("Gateway_needs_verification", "Activity_verify_warning", name="区域性/全区",
              condition="area in ('regional', 'district_wide')")
    p.connect("Gateway_needs_verification", "Gateway_publish_merge", name="局地",
              flow_id="Flow_local_warning")
    p.connect("Activity_verify_warning", "Gateway_verification")
    p.connect("Gateway_verification", "Gateway_publish_merge", name="同意",
              condition="verified == 'approve'", route="enter_bottom")
    p.connect("Gateway_verification", "Activity_count_draft_return", name="退回",
              flow_id="Flow_verification_returned")
    p.connect("Activity_count_draft_return", "Gateway_draft_round")
    p.connect("Gateway_draft_round", "Gateway_draft_merge", name="修改",
              condition=f"draft_round <= {MAX_RETURNS}", route="over", via=0.08,
              via_lane=meteorology)
    p.connect("Gateway_draft_round", "Event_not_published", name="超过三次",
              flow_id="Flow_returns_exhausted")
    p.connect("Gateway_publish_merge", "Activity_publish", route="enter_top")
    p.connect("Activity_publish", "Event_published")
    return Definitions("Definitions_warning_publication", [p])
