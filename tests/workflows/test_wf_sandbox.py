"""Designer-written text runs in a supervised worker: one long C call, memory and time are
bounded, the task ends in ERROR with a clear message, and everything else keeps working."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import warnings

import pytest

from tests.workflows.bpmn_helpers import T0, definitions, linear_process, script_process
from workflows import Limits, Runtime, ScriptLimits, sandbox, verify_replay
from workflows.safety import is_plain, parse_ast

# One C-level call that runs for seconds: a set of integers whose hashes all collide.
COLLIDING = "len(set(range(0, 20000 * (2**61 - 1), 2**61 - 1)))"
TIGHT = ScriptLimits(max_seconds=0.2, kill_grace_seconds=0.3)


def tight_runtime(**limits: object) -> Runtime:
    return Runtime(script_limits=TIGHT, limits=Limits(**limits))  # type: ignore[arg-type]


def started(runtime: Runtime, xml: bytes, data: dict[str, object] | None = None):
    began = time.perf_counter()
    instance, result = runtime.start(runtime.compile({"x.bpmn": xml}), "p", data, at=T0)
    return instance, result, time.perf_counter() - began


def gateway(condition: str) -> bytes:
    return definitions(linear_process(f"""
    <bpmn:exclusiveGateway id="work" default="f_no" />
    <bpmn:sequenceFlow id="f_yes" sourceRef="work" targetRef="end">
      <bpmn:conditionExpression>{condition}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="work" targetRef="end" />"""))


def timer(expression: str) -> bytes:
    return definitions(linear_process(f"""
    <bpmn:userTask id="wait" />
    <bpmn:boundaryEvent id="work" attachedToRef="wait">
      <bpmn:timerEventDefinition>
        <bpmn:timeDuration>{expression}</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f_t" sourceRef="work" targetRef="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="wait" targetRef="end" />""", first="wait"))


def payload(expression: str) -> bytes:
    return definitions(linear_process(f"""
    <bpmn:intermediateThrowEvent id="work">
      <bpmn:messageEventDefinition messageRef="m" camunda:expression="{expression}" />
    </bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />"""),
        extra='<bpmn:message id="m" name="help" />\n')


def loop(condition: str) -> bytes:
    return definitions(linear_process(f"""
    <bpmn:scriptTask id="work" scriptFormat="python">
      <bpmn:standardLoopCharacteristics loopMaximum="3">
        <bpmn:loopCondition>{condition}</bpmn:loopCondition>
      </bpmn:standardLoopCharacteristics>
      <bpmn:script>n = 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />"""))


@pytest.mark.parametrize("xml, what", [
    (script_process(f"x = {COLLIDING}"), "script"),
    (gateway(f"{COLLIDING} &gt; 0"), "expression"),
    (timer(f"'PT1M' if {COLLIDING} else 'PT2M'"), "expression"),
    (payload(f"{{'size': {COLLIDING}}}"), "expression"),
    (loop(f"{COLLIDING} &lt; 0"), "expression"),
], ids=["script", "gateway condition", "timer expression", "message payload",
        "loop condition"])
def test_one_long_c_call_is_stopped_by_the_time_budget(xml, what):
    runtime = tight_runtime()
    instance, result, took = started(runtime, xml)
    assert took < 3, f"the {what} ran for {took:.1f} s"
    assert result.failure is not None and result.failure.element_id == "work"
    assert result.failure.kind == "timeout"  # a retry on a quieter machine may pass
    assert f"the {what} was stopped after 0.2 s; one operation in it ran too long" \
        in result.failure.message
    assert [f.element_id for f in instance.errors()] == ["work"]
    json.loads(instance.dump())
    # The killed worker is replaced: the next evaluation works.
    _, fine, _ = started(runtime, script_process("x = 1 + 1"))
    assert fine.ok


def test_slow_loop_iterations_are_stopped_by_the_time_per_step():
    body = linear_process("""
    <bpmn:scriptTask id="work" scriptFormat="python">
      <bpmn:standardLoopCharacteristics loopMaximum="200" />
      <bpmn:script>n = n + 1
for i in range(20000):
    y = i * 2</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />""")
    runtime = Runtime(script_limits=TIGHT, limits=Limits(max_call_seconds=0.5))
    instance, result, took = started(runtime, definitions(body), {"n": 0})
    assert took < 3
    assert result.failure is not None and result.failure.kind == "timeout"
    assert "this step has run for" in result.failure.message
    assert "the limit is 0.5 s for one step" in result.failure.message


def test_memory_is_capped_in_the_worker():
    runtime = Runtime(script_limits=ScriptLimits(max_memory_mb=128))
    _, result, _ = started(runtime, script_process(
        "x = [list(range(100000)) for i in range(40)]\nx = 1"))
    assert result.failure is not None
    assert "the script needed more than 128 MB of memory" in result.failure.message
    _, fine, _ = started(runtime, script_process("x = [list(range(1000)) for i in range(4)]"))
    assert fine.ok


def test_other_threads_keep_working_while_one_runs_away():
    runtime = Runtime(script_limits=ScriptLimits(max_seconds=2, kill_grace_seconds=0.5))
    runaway = runtime.compile({"r.bpmn": script_process(
        "x = len(set(range(0, 60000 * (2**61 - 1), 2**61 - 1)))")})
    normal = runtime.compile({"n.bpmn": script_process("x = value * 2\ny = f'{x}'", "q")})
    runtime.start(normal, "q", {"value": 1})  # a warm worker for the quick thread
    finished: dict[str, float] = {}

    def run_away() -> None:
        _, result = runtime.start(runaway, "p")
        assert result.failure is not None
        finished["runaway"] = time.perf_counter()

    def quick() -> None:
        for value in range(20):
            instance, result = runtime.start(normal, "q", {"value": value})
            assert result.ok and instance.data["y"] == str(value * 2)
            [task] = instance.ready_human_tasks()
            assert instance.complete_task(task.task_id).ok
        finished["quick"] = time.perf_counter()

    began = time.perf_counter()
    slow = threading.Thread(target=run_away)
    slow.start()
    time.sleep(0.2)  # the runaway is in its C call now
    fast = threading.Thread(target=quick)
    fast.start()
    fast.join()
    slow.join()
    assert finished["quick"] - began < 1.5
    assert finished["quick"] < finished["runaway"]
    assert finished["runaway"] - began < 4


def test_script_data_is_limited_in_bytes_naming_the_variable():
    runtime = Runtime(script_limits=ScriptLimits(max_data_bytes=100_000))
    _, result, _ = started(runtime, script_process(
        "small = 'x' * 1000\nreport = '报' * 60000\nnote = 'ok'"))
    assert result.failure is not None and result.failure.element_id == "work"
    assert ("task data would have 181036 bytes as JSON; the limit is 100000 bytes per task; "
            "variable 'report' holds 180002 of them") in result.failure.message


def test_default_data_limit_stops_a_large_string_state():
    _, result, _ = started(Runtime(), script_process("a = 'x' * 900000\nb = a.upper()"))
    assert result.failure is not None
    assert "the limit is 1000000 bytes per task" in result.failure.message


def test_deeply_nested_data_is_refused():
    _, result, _ = started(Runtime(), script_process("x = []\nfor i in range(100):\n"
                                                     "    x = [x]"))
    assert result.failure is not None
    assert "variable 'x' in task data is nested more than 64 levels deep" \
        in result.failure.message


def loop_of_growing_data() -> bytes:
    return definitions(linear_process("""
    <bpmn:scriptTask id="work" scriptFormat="python">
      <bpmn:standardLoopCharacteristics loopMaximum="100" />
      <bpmn:script>n = n + 1
chunk = str(n) * 20000</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end" />"""))


def test_data_kept_by_an_instance_is_limited_and_replays_the_same():
    runtime = Runtime(limits=Limits(max_state_bytes=300_000))
    version = runtime.compile({"l.bpmn": loop_of_growing_data()})
    instance, result = runtime.start(version, "p", {"n": 0}, at=T0)
    assert result.failure is not None and result.failure.kind == "limit"
    assert "the instance keeps" in result.failure.message
    assert "the limit is 300000; the largest is variable 'chunk' set by 'work'" \
        in result.failure.message
    state = instance.dump()
    assert len(state) < 600_000
    # Saved and loaded, the instance gives the same verdict; so does a replay.
    again = runtime.load(version, state)
    retried = again.retry_task(result.failure.task_id, at=T0)
    assert retried.failure is not None and "the instance keeps" in retried.failure.message
    verify_replay(runtime, version, [result.input], json.loads(state))


def test_oversized_inputs_are_refused_before_anything_changes():
    runtime = Runtime(script_limits=ScriptLimits(max_data_bytes=1000))
    version = runtime.compile({"s.bpmn": script_process("x = 1")})
    with pytest.raises(Exception, match="the start data would have"):
        runtime.start(version, "p", {"text": "x" * 2000})


def test_now_in_the_worker_is_the_engine_calls_time():
    instance, result, _ = started(Runtime(), script_process(
        "at = now().isoformat()\nday = today().isoformat()"))
    assert result.ok
    assert (instance.data["at"], instance.data["day"]) == (T0.isoformat(), "2026-03-01")


def test_plain_expressions_stay_in_the_calling_process():
    plain = ["confirmed == True", "'PT30M'", "level in ('red', 'orange')",
             "x['a'] >= -3 and not y", "a if b else c"]
    worker = ["a in b", "len(x) > 3", "x + 1 > 2", "[i for i in x]", "x[1:]", "f'{x}'"]
    assert [is_plain(parse_ast(e, "eval")) for e in plain] == [True] * len(plain)
    assert [is_plain(parse_ast(e, "eval")) for e in worker] == [False] * len(worker)
    # Scripts: straight-line assignments whose values can only be constants or truth values.
    plain = ["level = 'red' if value >= threshold else 'yellow'\nreminders = 0",
             "urgent = level in ('red', 'orange') and not silenced", "n = -1"]
    worker = ["outcome = verdict", "n = n + 1", "x = a or b", "d['k'] = 1", "a, b = 1, 2",
              "at = now().isoformat()", "for i in range(3):\n    n = i"]
    assert [is_plain(parse_ast(e, "exec")) for e in plain] == [True] * len(plain)
    assert [is_plain(parse_ast(e, "exec")) for e in worker] == [False] * len(worker)


def _sockets_of(pid: int) -> set[str]:
    fd_dir = f"/proc/{pid}/fd"
    links = set()
    for fd in os.listdir(fd_dir):
        try:
            links.add(os.readlink(f"{fd_dir}/{fd}"))
        except OSError:
            continue
    return links


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_workers_do_not_inherit_the_callers_sockets():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        inode = os.fstat(listener.fileno()).st_ino
        pool = sandbox.pool(200, 1)  # a pool of its own: a worker forked after the socket
        assert pool.call({"op": "ping"}, timeout=10) == {"ok": True}
        [worker] = pool._idle
        assert f"socket:[{inode}]" not in _sockets_of(worker.process.pid)
        pool.close()
        assert not worker.process.is_alive()


def test_check_and_compile_run_in_a_bounded_worker():
    from tests.workflows.test_wf_structure import chain
    from workflows import CompileOptions, DefinitionError

    large = definitions("".join(chain(200, f"p{n}") for n in range(30)))  # 1.3 s, 30 MB
    slow = Runtime(compile_options=CompileOptions(max_seconds=0.3))
    began = time.perf_counter()
    with pytest.raises(DefinitionError) as refused:
        slow.compile({"l.bpmn": large})
    assert time.perf_counter() - began < 1
    assert [p.message for p in refused.value.problems] == [
        "checking the version took longer than 0.3 s; it is too large or too complex"]
    small = Runtime(compile_options=CompileOptions(max_memory_mb=48))
    with pytest.raises(DefinitionError) as refused:
        small.compile({"l.bpmn": large})
    [problem] = refused.value.problems
    # Out of address space, the XML library may crash the worker instead of raising.
    assert problem.message in (
        "checking the version needed more than 48 MB of memory",
        "checking the version stopped its worker process (exit code -11); it is too large or "
        "too complex")
    assert small.compile({"s.bpmn": script_process("x = 1")}).process_ids == ("p",)


def test_a_forked_child_starts_its_own_workers():
    runtime = Runtime()
    version = runtime.compile({"s.bpmn": script_process("x = value + 1")})
    assert runtime.start(version, "p", {"value": 1})[0].data["x"] == 2
    limits = runtime.script_limits
    parents = {w.process.pid for w in sandbox.pool(limits.max_memory_mb, limits.max_workers)._idle}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # the child: like a gunicorn worker forked after its master used the sandbox
        code = 1
        try:
            instance, result = runtime.start(version, "p", {"value": 41})
            code = 0 if result.ok and instance.data["x"] == 42 else 2
            own = sandbox.pool(limits.max_memory_mb, limits.max_workers)._idle
            if not own or {w.process.pid for w in own} & parents:
                code = 3  # it talked to its parent's workers
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert runtime.start(version, "p", {"value": 2})[0].data["x"] == 3
