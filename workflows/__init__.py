"""The engine layer around SpiffWorkflow: load, check, run, record, replay and migrate handbooks.

Nothing here imports Flask, SQLAlchemy or the app; the app calls this package for everything BPMN.

Loading a version (one or several BPMN files uploaded together)::

    runtime = Runtime(clock=SystemClock())           # limits=, script_limits=, max_versions=
    version = runtime.compile({"gas.bpmn": data})    # DefinitionError(problems) if unusable
    version.hash                                     # SHA-256 of the files: the version's id
    version.form_fields(process_id, element_id)      # tuple[FormField, ...]
    version.elements(process_id)                     # tuple[ElementInfo, ...] with lanes

Running an instance. Every call that moves it returns a StepResult: `events` (HistoryEvent list
to persist), `input` (what to record for replay) and `failure` (TaskFailure when a task stopped
in ERROR; the instance is still consistent and can be saved)::

    instance, result = runtime.start(version, "alert_handling", {"value": 5})
    instance.ready_human_tasks()                     # [HumanTask(task_id, element_id, lane, form…)]
    instance.complete_task(task_id, {"confirmed": "true"}, actor="u17")
    instance.send_message("现场反馈", {"ok": True})     # into this instance only
    instance.send_signal("解除预警")
    instance.fire_timers()                           # at the clock's time (or at=…)
    instance.update_data({"accept_limit": "PT5M"})   # running tasks see it; timers re-armed
    instance.next_timer_due()                        # aware UTC datetime or None
    instance.waiting_events(), instance.take_thrown_events()
    instance.finished, instance.data, instance.errors()
    instance.retry_task(task_id)                     # a task in ERROR, after the cause is gone
    state = instance.dump()                          # bytes (or .save() for a dict), no spec
    instance = runtime.load(version, state)

History, replay and migration::

    verify_replay(runtime, version, inputs, recorded_state)   # ReplayMismatchError if it differs
    diff_versions(old, new, process_id)                       # VersionDiff
    check_migration(instance, new); migrate(instance, new)    # MigrationRefusedError if unsafe
    dry_run(runtime, states, new, version_of)                 # {key: MigrationCheck}

A DefinitionError carries `Problem`s: a stable `code` with `params` (the app words them), the
file, the drawn `element` to pin each on (`child` keeps the inner id of a condition, timer
definition, loop setting or form field), its `process` and `diagram` (see `pinning`).

What every handbook shares is a named function of the script environment (`rules`), called
from a script task in one line: `register_case()`, `grade_and_push()`,
`sync_case_updates(stamp='accepted_at')`, `apply_level_upgrade()`, `schedule_accept()`, ...

Caller mistakes raise before anything changes: FormValidationError (per field), DataError (not
JSON, or larger than the data limits), TaskNotFoundError, TaskNotReadyError,
EventNotExpectedError, StateError.

Designer-written text (scripts, conditions, timer, loop and payload expressions) passes an AST
allow-list when a version is loaded and runs, unless it is a plain comparison, in a supervised
worker process with a hard time and memory limit (`sandbox`); checking and compiling a version
runs in one first too. The limits live in three dataclasses, each documenting its defaults:
`ScriptLimits` (text, run time, task data, isolation), `Limits` (tasks, iterations, kept data
and time per call of one instance) and `CompileOptions` (files, processes, elements, nesting,
call graph, loop maximums, time and memory of the check). A task stopped by any of them ends
in ERROR with a message saying which limit and what to change.

Call activities copy all variables: the called process starts with a copy of the caller's data
and, when it ends, the caller's data is replaced by the called process's final data (the engine's
behaviour). Camunda in/out variable mappings are refused at load so nobody relies on them.

Messages are routed by the caller to one instance; correlation keys are not used to find
instances (the engine does not correlate messages behind event-based gateways anyway). A message
payload goes to the catching event's `camunda:resultVariable` (default `<element id>_Response`);
a signal payload (a dict) is merged into the catching task's data.
"""

from .clock import Clock, FixedClock, SystemClock
from .errors import (
    DataError,
    DefinitionError,
    EventNotExpectedError,
    FieldProblem,
    FormValidationError,
    MigrationRefusedError,
    Problem,
    ReplayMismatchError,
    StateError,
    TaskNotFoundError,
    TaskNotReadyError,
    WorkflowsError,
)
from .forms import EnumOption, FormField, validate_form_data
from .guards import ScriptLimits
from .history import HistoryEvent
from .inputs import (
    CompleteTaskInput,
    DataInput,
    MessageInput,
    MigrationInput,
    RecordedInput,
    RetryInput,
    SignalInput,
    StartInput,
    TimerInput,
    input_from_dict,
)
from .limits import LimitExceeded, Limits
from .migration import (
    ElementChange,
    MigrationCheck,
    MigrationReport,
    VersionDiff,
    check_migration,
    diff_versions,
    dry_run,
    migrate,
)
from .replay import replay, verify_replay
from .results import HumanTask, StepResult, TaskFailure, ThrownEvent, WaitingEvent
from .runtime import Instance, Runtime
from .specs import (
    CompiledVersion,
    CompileOptions,
    ElementInfo,
    SpecCache,
    compile_version,
    version_hash,
)

__all__ = [
    "Clock", "FixedClock", "SystemClock",
    "DataError", "DefinitionError", "EventNotExpectedError", "FieldProblem", "FormValidationError",
    "MigrationRefusedError", "Problem", "ReplayMismatchError", "StateError",
    "TaskNotFoundError", "TaskNotReadyError", "WorkflowsError", "LimitExceeded",
    "EnumOption", "FormField", "validate_form_data",
    "ScriptLimits", "Limits",
    "HistoryEvent",
    "CompleteTaskInput", "DataInput", "MessageInput", "MigrationInput", "RecordedInput",
    "RetryInput",
    "SignalInput", "StartInput", "TimerInput", "input_from_dict",
    "ElementChange", "MigrationCheck", "MigrationReport", "VersionDiff", "check_migration",
    "diff_versions", "dry_run", "migrate",
    "replay", "verify_replay",
    "HumanTask", "Instance", "Runtime", "StepResult", "TaskFailure", "ThrownEvent",
    "WaitingEvent",
    "CompiledVersion", "CompileOptions", "ElementInfo", "SpecCache", "compile_version",
    "version_hash",
]
