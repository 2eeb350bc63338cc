"""Script and expression safety: escapes refused at load, runaway scripts stopped at run time."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from tests.workflows.bpmn_helpers import T0, messages_of, script_process
from workflows import Runtime, ScriptLimits, safety
from workflows.safety import check_source

# Each is refused when the version is loaded; the message says what is not allowed.
LOAD_TIME_ESCAPES = [
    ("().__class__.__bases__[0].__subclasses__()", "attributes starting with '_'"),
    ("x = __import__('os').system('id')", "names starting with '_'"),
    ("x = getattr(data, '_' + '_class__')", "'getattr' is not available"),
    ("x = '{0.__class__}'.format(data)", "'.format' is not available"),
    ("x = str.format('{0.__class__}', data)", "'.format' is not available"),
    ("x = f'{data.__class__.__mro__}'", "attributes starting with '_'"),
    ("x = (lambda f=open: f('/etc/passwd'))()", "lambda is not allowed"),
    ("g = (i for i in [1])\nx = g.gi_frame.f_back.f_globals", "'.gi_frame' is not available"),
    ("import os", "imports are not allowed"),
    ("from os import system", "imports are not allowed"),
    ("exec('import os')", "'exec' is not available"),
    ("x = eval('1 + 1')", "'eval' is not available"),
    ("c = compile('1', 'f', 'eval')", "'compile' is not available"),
    ("x = open('/etc/passwd').read()", "'open' is not available"),
    ("x = globals()['__builtins__']", "'globals' is not available"),
    ("x = vars()", "'vars' is not available"),
    ("x = locals()", "'locals' is not available"),
    ("x = dir()", "'dir' is not available"),
    ("x = type(data).mro()", "'type' is not available"),
    ("x = [].__class__.__base__", "attributes starting with '_'"),
    ("x = object.__subclasses__()", "'object' is not available"),
    ("x = super()", "'super' is not available"),
    ("x = memoryview(bytearray(8))", "'memoryview' is not available"),
    ("breakpoint()", "'breakpoint' is not available"),
    ("x = input()", "'input' is not available"),
    ("print(data)", "'print' is not available"),
    ("x = 9**9**9**9", "the constant expression is too large"),
    ("x = 'x' * 10**12", "the constant expression is too large"),
    ("x = 1 << 10**9", "the constant expression is too large"),
    ("while True:\n    pass", "while loops are not allowed"),
    ("def f():\n    return 1", "defining functions is not allowed"),
    ("class A:\n    pass", "defining classes is not allowed"),
    ("try:\n    x = 1\nexcept Exception:\n    pass", "try/except is not allowed"),
    ("with open('x') as f:\n    pass", "with-statements are not allowed"),
    ("global data", "global is not allowed"),
    ("x = (yield)", "yield is not allowed"),
    ("match data:\n    case _:\n        pass", "match statements are not allowed"),
    ("x = f'{1:>999999999}'", "format width is too large"),
    ("x = now.__self__", "attributes starting with '_'"),
    ("x = math.__loader__", "attributes starting with '_'"),
    ("data.count = 1", "setting or deleting attributes is not allowed"),
    ("x = " + "[" * 45 + "1" + "]" * 45, "nested too deeply"),
    ("x = b'bytes'", "bytes literals are not allowed"),
    ("x = datetime.now()", "call now() for the current time"),
]


@pytest.mark.parametrize("script, expected", LOAD_TIME_ESCAPES,
                         ids=[s[:30] for s, _ in LOAD_TIME_ESCAPES])
def test_escape_refused_at_load(script, expected):
    assert expected in messages_of({"escape.bpmn": script_process(script)})


# Each passes the static check but is stopped by a guard or the budget while running.
RUN_TIME_STOPS = [
    ("n = 10**6\nx = 2 ** n", "would have about"),
    ("x = 10\nfor i in range(40):\n    x = x * x", "the product would have about"),
    ("n = 12\nx = 'x' * 10**n", "the limit is"),
    ("x = list(range(2**64))", "range() with more than"),
    ("x = [[a for a in range(100000)] for b in range(100000)]", "the script was stopped after"),
    ("x = [0]\nfor i in range(60):\n    x = [x, x]\ny = str(x)", "more than 100000 elements"),
    ("x = [0]\nfor i in range(60):\n    x = [x, x]\ny = x == [x, x]", "more than 100000 elements"),
    ("x = 'a'.ljust(10**9)", "the limit is 1000000"),
    ("x = [[0] * 100000 for i in range(100000)]", "more than 5000000 elements and characters"),
    ("x = list(range(100000))\ny = [x[:] for i in range(1000)]", "more than 5000000"),
    ("s = 'ab' * 500000\nx = [s.upper() for i in range(100)]", "more than 5000000"),
    ("s = 'ab' * 500000\nx = [f'{s}{s}' for i in range(100)]", "more than 5000000"),
    ("x = [2 ** 16000 for i in range(100000)]", "more than 5000000"),
    ("x = 'a'.join(i for i in 'abc')", "join() needs a list"),
    ("x = 'a' * 1000\ny = x.join([x] * 100000)", "the limit is 1000000"),
    ("x = 'ab' * 1000\nfor i in range(30):\n    x = x + x", "the limit is 1000000"),
    ("x = [1]\nfor i in range(40):\n    x.extend(x)", "the limit is 100000"),
    ("x = sum([[1]] * 10, [])", "sum() adds numbers only"),
    ("x = '%s %s' % (1, 2)", "use an f-string"),
    ("x = int('9' * 5000)", "ValueError"),
    ("x = data.gi_frame if False else sorted.__name__", "attributes starting with '_'"),
    ("x = {(1, 2): 3}\nx = x.keys().mapping", "is not available"),
    ("x = sorted.count(1)", "'count' is not available on a function"),
    ("g = (i for i in data)\nx = g.count(1)", "'count' is not available on a generator"),
]


@pytest.mark.parametrize("script, expected", RUN_TIME_STOPS,
                         ids=[s[:30] for s, _ in RUN_TIME_STOPS])
def test_runaway_script_is_stopped(wf_runtime, script, expected):
    if check_source(script, "exec", wf_runtime.script_limits):
        assert expected in messages_of({"s.bpmn": script_process(script)})
        return
    version = wf_runtime.compile({"s.bpmn": script_process(script)})
    instance, result = wf_runtime.start(version, "p", {"data": [1, 2]})
    assert result.failure is not None, "the script should have been stopped"
    assert result.failure.element_id == "work"
    # On a loaded machine the time budget can stop a script before its allocation budget
    # does; either way it is stopped, with a message that says why.
    assert expected in result.failure.message or (
        "more than" in expected and "the script was stopped after" in result.failure.message)
    assert [f.element_id for f in instance.errors()] == ["work"]
    # The caller keeps working: the state saves, and another instance runs normally.
    json.loads(instance.dump())
    other = wf_runtime.compile({"ok.bpmn": script_process("x = 1", "q")})
    _, fine = wf_runtime.start(other, "q")
    assert fine.ok


def test_deadline_stops_slow_script_and_retry_works_with_more_time():
    slow = "for i in range(40):\n    x = sum(range(100000))"
    tight = Runtime(script_limits=ScriptLimits(max_seconds=0.05))
    version = tight.compile({"s.bpmn": script_process(slow)})
    instance, result = tight.start(version, "p", at=T0)
    assert result.failure is not None and result.failure.kind == "timeout"
    assert "stopped after 0.05 s" in result.failure.message
    state = instance.dump()

    roomy = Runtime(script_limits=ScriptLimits(max_seconds=30))
    again = roomy.load(roomy.compile({"s.bpmn": script_process(slow)}), state)
    failed = again.errors()[0]
    assert "stopped after 0.05 s" in failed.message
    retried = again.retry_task(failed.task_id, at=T0)
    assert retried.ok
    assert [t.element_id for t in again.ready_human_tasks()] == ["after"]
    assert again.errors() == []


def test_line_budget_message():
    wf_runtime = Runtime(script_limits=ScriptLimits(max_lines=1000))
    version = wf_runtime.compile({"s.bpmn": script_process("x = 0\nfor i in range(5000):\n"
                                                        "    x = x + i")})
    _, result = wf_runtime.start(version, "p", at=T0)
    assert result.failure is not None
    assert "stopped after 1000 lines" in result.failure.message
    assert result.failure.line == 3


def test_realistic_handbook_script_runs(wf_runtime):
    script = """
deadline = (now() + timedelta(minutes=30)).isoformat()
owners = [d['name'] for d in departments if d['town'] == town]
summary = f"{len(owners)} departments: {', '.join(owners)}"
level = 'red' if value >= threshold else 'yellow'
total = sum(d['people'] for d in departments)
stats = {'max': max(values), 'avg': round(sum(values) / len(values), 2)}
for d in departments:
    d['notified'] = True
count = 0
for i in range(3):
    count += i
label = 'abc'.upper().replace('B', 'b')
side = math.floor(math.sqrt(16.0))
local = now().astimezone(SHANGHAI).strftime('%H:%M')
due = parse_datetime('2026-03-01T17:00:00+08:00') > now()
del values
"""
    version = wf_runtime.compile({"s.bpmn": script_process(script)})
    data = {"departments": [{"name": "燃气公司", "town": "川沙", "people": 3},
                            {"name": "消防", "town": "张江", "people": 5}],
            "town": "川沙", "value": 7, "threshold": 5, "values": [1, 2, 4]}
    instance, result = wf_runtime.start(version, "p", data, at=T0)
    assert result.ok, result.failure
    after = instance.data
    assert after["deadline"] == "2026-03-01T08:30:00+00:00"
    assert after["owners"] == ["燃气公司"] and after["summary"] == "1 departments: 燃气公司"
    assert (after["level"], after["total"], after["count"]) == ("red", 8, 3)
    assert after["stats"] == {"max": 4, "avg": 2.33}
    assert all(d["notified"] for d in after["departments"])
    assert (after["label"], after["side"], after["local"], after["due"]) == ("AbC", 4, "16:00",
                                                                            True)
    assert "values" not in after


@pytest.mark.parametrize("script, variable, hint", [
    ("deadline = now()", "deadline", ".isoformat()"),
    ("pair = (1, 2)", "pair", "list(...)"),
    ("rows = [{'at': now()}]", "rows[0].at", ".isoformat()"),
    ("d = {1: 'a'}", "d", "non-text key"),
    ("f = len", "f", "builtin_function_or_method"),
    ("x = float('inf')", "x", "JSON"),
])
def test_non_json_task_data_is_refused_naming_the_variable(wf_runtime, script, variable, hint):
    version = wf_runtime.compile({"s.bpmn": script_process(script)})
    _, result = wf_runtime.start(version, "p", at=T0)
    assert result.failure is not None
    assert f"variable '{variable}'" in result.failure.message
    assert hint in result.failure.message


def test_condition_error_leaves_gateway_in_error(wf_runtime):
    from tests.workflows.bpmn_helpers import definitions, linear_process

    body = linear_process("""
    <bpmn:exclusiveGateway id="work" default="f_no" />
    <bpmn:sequenceFlow id="f_yes" sourceRef="work" targetRef="end">
      <bpmn:conditionExpression>missing_variable &gt; 3</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="work" targetRef="end" />""")
    version = wf_runtime.compile({"g.bpmn": definitions(body)})
    instance, result = wf_runtime.start(version, "p", at=T0)
    assert result.failure is not None and result.failure.element_id == "work"
    assert "NameError" in result.failure.message and "missing_variable" in result.failure.message
    assert instance.errors()[0].element_id == "work"


def test_constant_folding_at_check_time_is_bounded():
    # 1.5 KB of text once folded into 100 MB of constants before the script was refused.
    source = "".join(f"a{i} = 'x' * 999999\n" for i in range(100))
    tracemalloc.start()
    try:
        issues = check_source(source, "exec", ScriptLimits())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [i.message for i in issues] == [
        "the constant text and numbers of the script add up to more than 1000000 characters "
        "and elements; compute large values at run time or split the script"]
    assert peak < 20 * 1024 * 1024


def test_nothing_is_evaluated_before_size_and_depth_pass(monkeypatch):
    folded: list[object] = []
    original = safety._evaluate_constant

    def counting(node, guards, memo):
        folded.append(node)
        return original(node, guards, memo)

    monkeypatch.setattr(safety, "_evaluate_constant", counting)
    too_big = "\n".join(f"a{i} = 'x' * 99999" for i in range(400))
    issues = check_source(too_big, "exec", ScriptLimits(max_nodes=500))
    assert [i.message for i in issues] == [
        "the script is too complex (more than 500 syntax nodes); split it into several tasks"]
    too_deep = "x = " + "(" * 30 + "'x' * 99999" + " + 'y')" * 30
    issues = check_source(too_deep, "exec", ScriptLimits(max_depth=20))
    assert [i.message for i in issues] == [
        "the script is nested too deeply; split it into steps"]
    assert folded == []
