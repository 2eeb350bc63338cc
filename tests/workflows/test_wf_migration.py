"""Version diff, safe migration with timer deadlines kept, and the dry run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.workflows.bpmn_helpers import T0, fixture_bytes
from workflows import MigrationRefusedError, check_migration, diff_versions, dry_run, migrate

BASE = fixture_bytes("alert_handling.bpmn").decode()


def edited(*replacements: tuple[str, str]) -> bytes:
    text = BASE
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text.encode()


# Compatible: the dispatch deadline becomes 45 minutes, a review step is added after the report.
V2 = edited(
    ("<bpmn:timeDuration xsi:type=\"bpmn:tFormalExpression\" "
     "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">PT30M</bpmn:timeDuration>",
     "<bpmn:timeDuration>PT45M</bpmn:timeDuration>"),
    ('<bpmn:sequenceFlow id="f_report" sourceRef="report" targetRef="end_done" />',
     '<bpmn:sequenceFlow id="f_report" sourceRef="report" targetRef="review" />\n'
     '<bpmn:userTask id="review" name="复核" />\n'
     '<bpmn:sequenceFlow id="f_review" sourceRef="review" targetRef="end_done" />'),
    ('name="派单处置"', 'name="派单处置（新）"'),
)

# Incompatible for some instances: the escalation step is dropped.
V3 = edited(
    ('<bpmn:flowNodeRef>escalate</bpmn:flowNodeRef>', ""),
    ('<bpmn:sequenceFlow id="f_timeout" sourceRef="dispatch_timeout" targetRef="escalate" />',
     '<bpmn:sequenceFlow id="f_timeout" sourceRef="dispatch_timeout" targetRef="end_escalated" />'),
    ("""    <bpmn:userTask id="escalate" name="升级处置">
      <bpmn:incoming>f_timeout</bpmn:incoming>
      <bpmn:outgoing>f_escalated</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f_escalated" sourceRef="escalate" targetRef="end_escalated" />""",
     ""),
)

# Drops the classification script every instance has already run.
V4 = edited(
    ('<bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="classify" />',
     '<bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="confirm_alert" />'),
    ("""    <bpmn:scriptTask id="classify" name="判定等级" scriptFormat="python">
      <bpmn:incoming>f_start</bpmn:incoming>
      <bpmn:outgoing>f_classify</bpmn:outgoing>
      <bpmn:script>level = 'red' if value &gt;= threshold else 'yellow'
reminders = 0</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f_classify" sourceRef="classify" targetRef="confirm_alert" />""",
     ""),
    ("<bpmn:flowNodeRef>classify</bpmn:flowNodeRef>", ""),
    ("reminders = reminders + 1", "reminders = 1"),
)


def compiled(wf_runtime, data: bytes):
    return wf_runtime.compile({"alert_handling.bpmn": data})


def new_case(wf_runtime, version):
    instance, _ = wf_runtime.start(version, "alert_handling", {"value": 5, "threshold": 3})
    return instance


def confirm(instance, confirmed=True):
    instance.complete_task(instance.ready_human_tasks()[0].task_id, {"confirmed": confirmed})


def test_diff_lists_added_removed_and_changed(wf_runtime, alert_version):
    diff = diff_versions(alert_version, compiled(wf_runtime, V2), "alert_handling")
    assert [c.element_id for c in diff.added] == ["review"]
    assert diff.removed == []
    changed = {c.element_id: c.attributes for c in diff.changed}
    assert "event_definition" in changed["dispatch_timeout"]
    assert "bpmn_name" in changed["dispatch"]
    assert "outputs" in changed["report"]
    assert not diff.empty and diff.to_dict()["added"][0]["element_type"] == "UserTask"

    removed = diff_versions(alert_version, compiled(wf_runtime, V3), "alert_handling").removed
    assert [c.element_id for c in removed] == ["escalate"]
    assert diff_versions(alert_version, alert_version, "alert_handling").empty


def test_migration_keeps_a_running_timer_deadline(wf_runtime, wf_clock, alert_version):
    instance = new_case(wf_runtime, alert_version)
    confirm(instance)  # at t0 the dispatch timer starts: PT30M in this version
    v2 = compiled(wf_runtime, V2)
    wf_clock.advance(minutes=10)
    report, result = migrate(instance, v2, actor="admin")
    assert result.ok and instance.version is v2
    assert report.to_version == v2.hash and [c.element_id for c in report.diff.added] == ["review"]
    assert instance.next_timer_due() == T0 + timedelta(minutes=30)  # not restarted, not 45

    state = instance.dump()
    assert wf_runtime.load(v2, state).next_timer_due() == T0 + timedelta(minutes=30)

    wf_clock.set(T0 + timedelta(minutes=29))
    instance.fire_timers()
    assert [t.element_id for t in instance.ready_human_tasks()] == ["dispatch"]
    assert instance.ready_human_tasks()[0].name == "派单处置（新）"
    wf_clock.set(T0 + timedelta(minutes=30, seconds=1))
    instance.fire_timers()
    assert [t.element_id for t in instance.ready_human_tasks()] == ["escalate"]


def test_migrated_instance_follows_the_new_path(wf_runtime, alert_version):
    instance = new_case(wf_runtime, alert_version)
    confirm(instance)
    migrate(instance, compiled(wf_runtime, V2))
    instance.complete_task(instance.ready_human_tasks()[0].task_id, {"measures": "关阀"})
    instance.complete_task(instance.ready_human_tasks()[0].task_id, {"result": "好"})
    assert [t.element_id for t in instance.ready_human_tasks()] == ["review"]


def test_migration_refused_when_removed_element_is_reachable(wf_runtime, alert_version):
    instance = new_case(wf_runtime, alert_version)
    confirm(instance)
    before = instance.save()
    with pytest.raises(MigrationRefusedError) as caught:
        migrate(instance, compiled(wf_runtime, V3))
    assert "element 'escalate' was removed but the instance may still reach it" in str(
        caught.value)
    assert instance.save() == before and instance.version is alert_version


def test_migration_refused_when_removed_element_was_used(wf_runtime, alert_version):
    instance = new_case(wf_runtime, alert_version)
    check = check_migration(instance, compiled(wf_runtime, V4))
    assert not check.can_migrate
    assert check.reasons == ["process 'alert_handling': element 'classify' was removed but "
                             "the instance has already used it"]


def test_dry_run_over_many_instances(wf_runtime, wf_clock, alert_version):
    at_confirm = new_case(wf_runtime, alert_version)
    at_report = new_case(wf_runtime, alert_version)
    confirm(at_report)
    at_report.complete_task(at_report.ready_human_tasks()[0].task_id, {"measures": "关阀"})
    false_alarm = new_case(wf_runtime, alert_version)
    confirm(false_alarm, confirmed=False)
    escalated = new_case(wf_runtime, alert_version)
    confirm(escalated)
    wf_clock.advance(minutes=31)
    escalated.fire_timers()
    states = {"A": at_confirm.save(), "B": at_report.dump(), "C": false_alarm.save(),
              "D": escalated.save(), "E": {"version": "gone", "instance": "x"}}
    v3 = compiled(wf_runtime, V3)
    results = dry_run(wf_runtime, states, v3, lambda h: alert_version if h == alert_version.hash
                      else None)
    assert {k: r.can_migrate for k, r in results.items()} == {
        "A": False, "B": True, "C": True, "D": False, "E": False}
    assert "may still reach it" in results["A"].reasons[0]
    assert "is at it (READY)" in results["D"].reasons[0]
    assert "not available" in results["E"].reasons[0]


def test_running_called_process_must_still_be_called(wf_runtime):
    caller = fixture_bytes("big_loop_caller.bpmn")
    old = wf_runtime.compile({"caller.bpmn": caller,
                           "inspection.bpmn": fixture_bytes("big_loop_inspection.bpmn")})
    instance, _ = wf_runtime.start(old, "scenario_gas")
    without_call = caller.decode().replace(
        '<bpmn:callActivity id="field_check" name="现场核查" calledElement="inspection">',
        '<bpmn:userTask id="field_check" name="现场核查">').replace(
        "</bpmn:callActivity>", "</bpmn:userTask>").encode()
    new = wf_runtime.compile({"caller.bpmn": without_call})
    check = check_migration(instance, new)
    assert not check.can_migrate
    assert any("called process 'inspection' is running" in r for r in check.reasons)


def test_replay_across_a_migration(wf_runtime, wf_clock, alert_version):
    from workflows import Runtime, verify_replay

    inputs = []
    instance, started = wf_runtime.start(alert_version, "alert_handling",
                                      {"value": 5, "threshold": 3})
    inputs.append(started.input)
    wf_clock.advance(minutes=2)
    task_id = instance.ready_human_tasks()[0].task_id
    inputs.append(instance.complete_task(task_id, {"confirmed": True}).input)
    v2 = compiled(wf_runtime, V2)
    wf_clock.advance(minutes=3)
    inputs.append(migrate(instance, v2)[1].input)
    wf_clock.advance(minutes=30)
    inputs.append(instance.fire_timers().input)
    assert [t.element_id for t in instance.ready_human_tasks()] == ["escalate"]

    fresh = Runtime()
    old = fresh.compile({"alert_handling.bpmn": BASE.encode()})
    new = fresh.compile({"alert_handling.bpmn": V2})
    replayed = verify_replay(fresh, old, inputs, instance.dump(), versions={new.hash: new})
    assert replayed.version is new
