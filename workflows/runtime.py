"""Running instances: start, complete human tasks, messages, signals, timers, retry, save and load.

Every call that moves an instance runs the engine at one fixed time taken from the injected clock
(or given explicitly), with deterministic task ids, a history recorder and the growth limits, and
returns a `StepResult`: the history events to persist, the input to record for replay, and the
failure if a task stopped in ERROR. Caller mistakes (unknown task, invalid form data, a message
nobody waits for) raise before anything changes.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, cast

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.manual_task import ManualTask
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .clock import Clock, SystemClock, as_utc
from .errors import (
    EventNotExpectedError,
    StateError,
    TaskNotFoundError,
    TaskNotReadyError,
)
from .forms import validate_form_data
from .guards import ScriptLimits
from .history import Recorder
from .hooks import TaskIdSource, engine_call
from .inputs import (
    CompleteTaskInput,
    DataInput,
    MessageInput,
    RecordedInput,
    RetryInput,
    SignalInput,
    StartInput,
    TimerInput,
)
from .limits import DataMeter, LimitExceeded, LimitGuard, Limits, saved_data_bytes
from .results import HumanTask, StepResult, TaskFailure, ThrownEvent, WaitingEvent
from .sandbox import decode
from .scripting import RestrictedScriptEngine, ScriptTimeout, check_data
from .serialization import (
    ENGINE_SERIALIZER_VERSION,
    workflow_from_dict,
    workflow_to_dict,
    workflow_to_json,
    workflow_to_text,
)
from .specs import BpmnFiles, CompiledVersion, CompileOptions, SpecCache
from .timers import rearm, task_due_time, timer_definitions

STATE_FORMAT = "workflows.instance/1"
_ERROR_KEY = "workflows_error"


def _last_running(workflow: BpmnWorkflow) -> Task | None:
    """The task the engine was working on when it stopped with an error it did not attach."""
    active = [t for t in workflow.get_tasks(state=TaskState.STARTED | TaskState.READY)]
    return max(active, key=lambda t: t.last_state_change, default=None)


def _failure(task: Task, kind: str, message: str, line: int | None = None) -> TaskFailure:
    spec = task.task_spec
    return TaskFailure(str(task.id), task.workflow.spec.name, getattr(spec, "bpmn_id", None),
                       getattr(spec, "bpmn_name", None), kind, message, line)


def _engine_message(exc: WorkflowException) -> str:
    """The engine's message without the '. ' its __str__ appends for (absent) notes."""
    text = str(exc.args[0]) if exc.args else exc.__class__.__name__
    notes = [str(n) for n in getattr(exc, "notes", []) if n]
    return ". ".join([text, *notes])


def _event_kind(definition: Any) -> str:
    if isinstance(definition, TimerEventDefinition):
        return "timer"
    name = type(definition).__name__.replace("EventDefinition", "").lower()
    return name or "event"


def _event_definitions(task: Task) -> list[Any]:
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [definition] if definition is not None else []


class Instance:
    """One running (or finished) process instance of a compiled version."""

    def __init__(self, runtime: Runtime, version: CompiledVersion, process_id: str,
                 instance_id: uuid.UUID, workflow: BpmnWorkflow, id_counter: int,
                 data_bytes: int = 0):
        self.runtime = runtime
        self.version = version
        self.process_id = process_id
        self.instance_id = instance_id
        self.workflow = workflow
        self.ids = TaskIdSource(instance_id, id_counter)
        self.meter = DataMeter(data_bytes)

    # -- reading -------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return bool(self.workflow.is_completed())

    @property
    def data(self) -> dict[str, Any]:
        """Process data: final data when finished, else the data of the last completed task."""
        return dict(copy.deepcopy(self.data_view()))

    def data_view(self) -> Mapping[str, Any]:
        """The same process data without a copy, for a caller that only reads it at once
        (the engine changes it in place when the instance moves on)."""
        if self.workflow.is_completed():
            return cast(Mapping[str, Any], self.workflow.data)
        last = self.workflow.last_task
        return cast(Mapping[str, Any], last.data) if last is not None else {}

    def _tasks(self, state: int) -> Iterator[Task]:
        return self.workflow.get_tasks_iterator(state=state)

    def ready_human_tasks(self) -> list[HumanTask]:
        """READY user and manual tasks (also those inside called processes)."""
        result = []
        for task in self.workflow.get_tasks_iterator(state=TaskState.READY, manual=True):
            spec = task.task_spec
            process_id = task.workflow.spec.name
            result.append(HumanTask(
                task_id=str(task.id), process_id=process_id, element_id=spec.bpmn_id,
                name=spec.bpmn_name, lane=spec.lane,
                kind="manual" if isinstance(spec, ManualTask) else "user",
                documentation=spec.documentation,
                form=self.version.form_fields(process_id, spec.bpmn_id),
                properties=dict(getattr(spec, "extensions", None) or {}),
            ))
        return result

    def errors(self) -> list[TaskFailure]:
        """Tasks in ERROR state with the reason recorded when they failed."""
        result = []
        for task in self._tasks(TaskState.ERROR):
            info = task.internal_data.get(_ERROR_KEY) or {}
            result.append(_failure(task, info.get("kind", "engine"),
                                   info.get("message", "the task failed"), info.get("line")))
        return result

    @property
    def has_errors(self) -> bool:
        return self.workflow.get_next_task(state=TaskState.ERROR) is not None

    def waiting_events(self) -> list[WaitingEvent]:
        """What the instance waits for (messages, signals, timers with their due time)."""
        result = []
        for task in list(self.workflow.event_manager.tasks.values()):
            due = task_due_time(task)
            for definition in _event_definitions(task):
                kind = _event_kind(definition)
                result.append(WaitingEvent(str(task.id), getattr(task.task_spec, "bpmn_id", None),
                                           kind, getattr(definition, "name", None),
                                           due if kind == "timer" else None))
        return result

    def take_thrown_events(self) -> list[ThrownEvent]:
        """Events thrown by the process that nothing in it caught (e.g. a message to another
        case), removed from the instance: persist them with the state you save next."""
        thrown = []
        for event in self.workflow.get_events():
            payload = event.payload
            if isinstance(payload, dict) and set(payload) == {"payload", "result_var"}:
                payload = payload["payload"]  # the Camunda message wrapper
            thrown.append(ThrownEvent(_event_kind(event.event_definition),
                                      getattr(event.event_definition, "name", None),
                                      copy.deepcopy(payload)))
        return thrown

    def next_timer_due(self) -> datetime | None:
        """The earliest time a waiting timer fires (aware UTC), or None. Timers fire strictly
        after their due time, as the engine compares with '<'."""
        due: datetime | None = None
        for task in list(self.workflow.event_manager.tasks.values()):
            moment = task_due_time(task)
            if moment is not None and (due is None or moment < due):
                due = moment
        return due

    # -- acting --------------------------------------------------------------------------------

    def _task(self, task_id: str | uuid.UUID) -> Task:
        try:
            key = task_id if isinstance(task_id, uuid.UUID) else uuid.UUID(str(task_id))
            task: Task | None = self.workflow.get_task_from_id(key)
        except (ValueError, WorkflowException):
            task = None
        if task is None:
            raise TaskNotFoundError(f"task {task_id} does not exist in this instance")
        return task

    def complete_task(self, task_id: str, data: Mapping[str, Any] | None = None,
                      actor: str | None = None, at: datetime | None = None) -> StepResult:
        """Complete a READY human task with form data (validated and converted)."""
        task = self._task(task_id)
        if task.state != TaskState.READY or not task.task_spec.manual:
            raise TaskNotReadyError(
                f"task {task_id} ({task.task_spec.bpmn_id}) is {TaskState.get_name(task.state)}"
                ", not a READY human task")
        fields = self.version.form_fields(task.workflow.spec.name, task.task_spec.bpmn_id)
        values = validate_form_data(fields, dict(data or {}))
        check_data(values, self.runtime.script_limits, "the form data")
        moment = self.runtime.time(at)

        def action(guard: LimitGuard) -> None:
            guard.before_run(task)
            task.data.update(values)
            task.run()
            self.workflow.do_engine_steps(will_complete_task=guard.before_run)

        record = CompleteTaskInput(moment, str(task.id), values, actor)
        return self.runtime.run_engine(self, moment, record, action, actor, task.id)

    def _catchers(self, definition_class: type[Any], name: str) -> list[tuple[Task, Any]]:
        found = []
        for task in list(self.workflow.event_manager.tasks.values()):
            for definition in _event_definitions(task):
                if isinstance(definition, definition_class) and definition.name == name:
                    found.append((task, definition))
        return found

    def _subprocess_starts(self, definition_class: type[Any], name: str) -> list[Any]:
        """Event sub-processes that a message or signal would start (not waiting tasks: the
        engine starts them from its spec when the event arrives)."""
        found = []
        workflow = self.workflow
        for spec_name in getattr(workflow.spec.start, "trigger_specs", None) or []:
            spec = workflow.subprocess_specs.get(spec_name)
            for start in getattr(spec, "bpmn_start_events", None) or []:
                definition = getattr(start, "event_definition", None)
                if isinstance(definition, definition_class) and definition.name == name:
                    found.append(definition)
        return found

    def _not_expected(self, what: str, name: str) -> EventNotExpectedError:
        waiting = sorted({f"{w.kind} {w.name!r}" for w in self.waiting_events() if w.name})
        return EventNotExpectedError(
            f"the instance is not waiting for {what} {name!r}; it waits for: "
            + (", ".join(waiting) or "nothing"))

    def send_message(self, name: str, payload: Any = None, actor: str | None = None,
                     at: datetime | None = None) -> StepResult:
        """Deliver a message to this instance (routed by the caller, not by correlation)."""
        definitions = [d for _, d in self._catchers(MessageEventDefinition, name)]
        definitions += self._subprocess_starts(MessageEventDefinition, name)
        if not definitions:
            raise self._not_expected("message", name)
        check_data({"payload": payload}, self.runtime.script_limits, "the message payload")
        definition = definitions[0]
        result_var = getattr(definition, "result_var", None)
        if hasattr(definition, "result_var"):
            event_payload: Any = {"payload": copy.deepcopy(payload), "result_var": result_var}
        elif payload is None or isinstance(payload, dict):
            event_payload = copy.deepcopy(payload or {})
        else:
            raise EventNotExpectedError(f"message {name!r} needs a dict payload here")
        moment = self.runtime.time(at)

        def action(guard: LimitGuard) -> None:
            self.workflow.send_event(BpmnEvent(type(definition)(name), payload=event_payload))
            self.workflow.do_engine_steps(will_complete_task=guard.before_run)

        record = MessageInput(moment, name, copy.deepcopy(payload), actor)
        return self.runtime.run_engine(self, moment, record, action, actor)

    def send_signal(self, name: str, payload: Mapping[str, Any] | None = None,
                    actor: str | None = None, at: datetime | None = None) -> StepResult:
        """Deliver a signal to this instance only; the payload is merged into the catcher's data."""
        if not self._catchers(SignalEventDefinition, name):
            raise self._not_expected("signal", name)
        body = dict(payload or {})
        check_data(body, self.runtime.script_limits, "the signal payload")
        moment = self.runtime.time(at)

        def action(guard: LimitGuard) -> None:
            event = BpmnEvent(SignalEventDefinition(name), payload=copy.deepcopy(body))
            self.workflow.send_event(event)
            self.workflow.do_engine_steps(will_complete_task=guard.before_run)

        record = SignalInput(moment, name, body or None, actor)
        return self.runtime.run_engine(self, moment, record, action, actor)

    def fire_timers(self, at: datetime | None = None) -> StepResult:
        """Refresh waiting timers at `at` (default: the clock) and run the engine steps."""
        moment = self.runtime.time(at)

        def action(guard: LimitGuard) -> None:
            self.workflow.refresh_timers()
            self.workflow.do_engine_steps(will_complete_task=guard.before_run)

        return self.runtime.run_engine(self, moment, TimerInput(moment), action)

    def update_data(self, values: Mapping[str, Any], actor: str | None = None,
                    at: datetime | None = None) -> StepResult:
        """Set process variables in every task still to run, and re-arm waiting timers.

        For changes decided outside the process (a level upgrade changes every time limit):
        each unfinished task, here and in running sub-processes, gets `values`, so the steps
        still ahead read them; a waiting timer whose expression reads them is recomputed as if
        the new values had held since it was armed (see `timers.rearm`), and timers now past
        due fire in this step.
        """
        body = copy.deepcopy(dict(values))
        check_data(body, self.runtime.script_limits, "the new values")
        moment = self.runtime.time(at)
        engine = self.workflow.script_engine

        def action(guard: LimitGuard) -> None:
            timers = []
            for task in list(self.workflow.event_manager.tasks.values()):
                for definition in timer_definitions(getattr(task.task_spec, "event_definition",
                                                            None)):
                    timers.append((task, definition.expression,
                                   engine.evaluate(task, definition.expression)))
            # The iterator descends into running sub-processes (call activities included).
            for task in self.workflow.get_tasks_iterator(state=TaskState.NOT_FINISHED_MASK):
                task.data.update(copy.deepcopy(body))
            if self.workflow.last_task is not None:  # what `data` answers from now on
                self.workflow.last_task.data.update(copy.deepcopy(body))
            for task, expression, old_text in timers:
                new_text = engine.evaluate(task, expression)
                if new_text != old_text:
                    rearm(task, str(old_text), str(new_text))
            self.workflow.refresh_timers()
            self.workflow.do_engine_steps(will_complete_task=guard.before_run)

        record = DataInput(moment, copy.deepcopy(body), actor)
        return self.runtime.run_engine(self, moment, record, action, actor)

    def retry_task(self, task_id: str, actor: str | None = None,
                   at: datetime | None = None) -> StepResult:
        """Run a task in ERROR again (after the cause was fixed, e.g. data or limits)."""
        task = self._task(task_id)
        if task.state != TaskState.ERROR:
            raise TaskNotReadyError(f"task {task_id} is {TaskState.get_name(task.state)}, not "
                                    "in ERROR")
        moment = self.runtime.time(at)

        def action(guard: LimitGuard) -> None:
            task.internal_data.pop(_ERROR_KEY, None)
            if isinstance(task.task_spec, CatchingEvent):
                task.internal_data.pop("event_value", None)
                task._set_state(TaskState.WAITING)
                task.task_spec._update(task)
            else:
                task._ready()
            self.workflow.do_engine_steps(will_complete_task=guard.before_run)

        record = RetryInput(moment, str(task.id), actor)
        return self.runtime.run_engine(self, moment, record, action, actor, task.id)

    # -- saving --------------------------------------------------------------------------------

    def _envelope(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT, "version": self.version.hash, "process": self.process_id,
            "instance": str(self.instance_id), "task_ids": self.ids.counter,
            "engine": ENGINE_SERIALIZER_VERSION,
        }

    def save(self) -> dict[str, Any]:
        """The instance state as a JSON-serialisable dict (without the process definition)."""
        state = self._envelope()
        state["workflow"] = workflow_to_dict(self.workflow)
        return state

    def dump(self) -> bytes:
        """The same state as compact UTF-8 JSON bytes (cheaper than save() + json.dumps)."""
        return workflow_to_json(self._envelope(), self.workflow, "workflow")

    def dump_text(self, ensure_ascii: bool = True) -> str:
        """The same state as compact JSON text; by default ASCII only (every other character
        escaped, an unpaired surrogate included)."""
        return workflow_to_text(self._envelope(), self.workflow, "workflow",
                                ensure_ascii=ensure_ascii)


class Runtime:
    """Configuration shared by all instances: clock, limits, script engine and spec cache."""

    def __init__(self, clock: Clock | None = None, limits: Limits | None = None,
                 script_limits: ScriptLimits | None = None, max_versions: int = 64,
                 compile_options: CompileOptions | None = None):
        self.clock = clock or SystemClock()
        self.limits = limits or Limits()
        self.script_limits = script_limits or ScriptLimits()
        options = compile_options or CompileOptions(script_limits=self.script_limits)
        self.cache = SpecCache(max_versions, options)
        self.engine = RestrictedScriptEngine(self.script_limits)

    def time(self, at: datetime | None) -> datetime:
        return as_utc(at if at is not None else self.clock.now())

    def compile(self, files: BpmnFiles) -> CompiledVersion:
        """Check, compile and cache a version (one or several BPMN files)."""
        return self.cache.load(files)

    def start(self, version: CompiledVersion, process_id: str,
              data: Mapping[str, Any] | None = None, *, instance_id: uuid.UUID | str | None = None,
              actor: str | None = None, at: datetime | None = None) -> tuple[Instance, StepResult]:
        """Create an instance and run it to its first wait state."""
        spec = version.spec(process_id)
        start_data = dict(data or {})
        body = check_data(start_data, self.script_limits, "the start data")
        key = uuid.UUID(str(instance_id)) if instance_id is not None else uuid.uuid4()
        moment = self.time(at)
        ids = TaskIdSource(key)
        with engine_call(moment, ids):
            workflow = BpmnWorkflow(spec, dict(version.dependencies[process_id]),
                                    script_engine=self.engine)
        instance = Instance(self, version, process_id, key, workflow, ids.counter)

        def action(guard: LimitGuard) -> None:
            workflow.task_tree.data.update(decode(body))
            workflow.do_engine_steps(will_complete_task=guard.before_run)

        record = StartInput(moment, process_id, str(key), decode(body), actor)
        return instance, self.run_engine(instance, moment, record, action, actor)

    def run_engine(self, instance: Instance, moment: datetime, record: RecordedInput,
                   action: Callable[[LimitGuard], None], actor: str | None = None,
                   actor_task_id: uuid.UUID | None = None) -> StepResult:
        """Run `action` as one engine call and turn engine failures into a TaskFailure."""
        recorder = Recorder(moment, actor, actor_task_id, instance.meter.on_completed)
        guard = LimitGuard(instance.workflow, self.limits, instance.meter)
        failure: TaskFailure | None = None
        with engine_call(moment, instance.ids, recorder):
            try:
                action(guard)
            except LimitExceeded as exc:
                failure = self._mark_failed(exc.task, exc.kind, str(exc), None)
            except WorkflowTaskException as exc:
                line = exc.line_number if isinstance(exc.line_number, int) else None
                # A stop by the time budget may pass on a less loaded machine: say so.
                kind = "timeout" if isinstance(exc.__cause__, ScriptTimeout) else "script"
                failure = self._mark_failed(exc.task, kind, _engine_message(exc), line)
            except WorkflowException as exc:
                # Not tied to a task by the engine (e.g. a gateway with no way out): the step
                # stops where it is and the instance reports it instead of half-running.
                task = getattr(exc, "task", None) or _last_running(instance.workflow)
                if task is None:
                    raise
                failure = self._mark_failed(task, "engine", str(exc), None)
        return StepResult(recorder.events, record, failure)

    @staticmethod
    def _mark_failed(task: Task, kind: str, message: str, line: int | None) -> TaskFailure:
        if task.state != TaskState.ERROR:
            # Failures outside a task run (a timer expression evaluated while waiting) leave
            # the task as it was; mark it so it shows up and stop refreshing it.
            task.workflow.top_workflow.event_manager.remove_task(task)
            task._set_state(TaskState.ERROR)
        task.internal_data[_ERROR_KEY] = {"kind": kind, "message": message, "line": line}
        return _failure(task, kind, message, line)

    def load(self, version: CompiledVersion, state: Mapping[str, Any] | bytes | str) -> Instance:
        """Rebuild an instance saved with `save()` or `dump()` around `version`'s specs."""
        if isinstance(state, (bytes, str)):
            try:
                state = json.loads(state)
            except ValueError as exc:
                raise StateError(f"the saved state is not valid JSON: {exc}") from None
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise StateError("the saved state has an unknown format")
        if state.get("version") != version.hash:
            raise StateError(f"the state belongs to version {str(state.get('version'))[:12]}, "
                             f"not {version.hash[:12]}")
        if state.get("engine") != ENGINE_SERIALIZER_VERSION:
            raise StateError(f"the state was written by engine serializer {state.get('engine')}"
                             f"; this engine writes {ENGINE_SERIALIZER_VERSION}")
        process_id = str(state["process"])
        spec = version.spec(process_id)
        try:
            workflow = workflow_from_dict(state["workflow"], spec,
                                          dict(version.dependencies[process_id]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the saved state is damaged: {exc.__class__.__name__}: {exc}") \
                from None
        if not isinstance(workflow, BpmnWorkflow):
            raise StateError("the saved state is damaged: it holds no process instance")
        try:
            instance_id, counter = uuid.UUID(str(state["instance"])), int(state["task_ids"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"the saved state is damaged: {exc.__class__.__name__}: {exc}") \
                from None
        workflow.script_engine = self.engine
        return Instance(self, version, process_id, instance_id, workflow, counter,
                        saved_data_bytes(state["workflow"]))
