"""Script task bodies (restricted Python, see workflows/safety.py) shared by the processes.

Level handling: `limits` maps each level to its time limits; the current level's limits are kept
flattened in `accept_limit`, `on_site_limit`, `feedback_limit`, `close_limit`, `escalate_after` and
`reminder_cycle` because timers name these variables. Messages that arrive while the case runs
(level upgrade, back to normal, weather warning) are handled in event sub-processes, whose data
is their own; they record what happened in the process-level data object `case_updates`, and the
main path applies it at its next synchronisation point.
"""

from __future__ import annotations

CASE_UPDATES = "case_updates"

REGISTER = "register_case()\n"
RECORD_FALSE_ALARM = "record_false_alarm()\n"
GRADE_PUSH = "grade_and_push()\n"
SYNC_UPDATES = "sync_case_updates()\n"
SYNC_AFTER_ACCEPT = "sync_case_updates(stamp='accepted_at')\n"
APPLY_LEVEL_UPGRADE = "apply_level_upgrade()\n"
RECORD_BACK_TO_NORMAL = "record_back_to_normal()\n"
RECORD_WEATHER_WARNING = "record_weather_warning()\n"
WEATHER_LEVEL_UPGRADE = "weather_level_upgrade()\n"
TRACKING = "track_overdue()\n"

REMINDED = """
reminded_at = now().isoformat()
"""

# common_accept. The supervision counter is set once; the timers are computed each time the
# task is (re)assigned. Reminders start when the accept limit has passed and repeat as
# `reminder_cycle` says (its repetitions and period are kept, its start is set here). The
# supervision deadline is `limits[level]['supervise_after']` when the handbook gives one, else
# the accept limit plus `escalate_after`.
PREPARE_ACCEPT = """
supervision_round = 0
"""

SCHEDULE_ACCEPT = "schedule_accept()\n"

COUNT_SUPERVISION = """
supervision_round = supervision_round + 1
"""

PREPARE_CLOSURE = """
verify_round = 0
"""

COUNT_RETURN = """
verify_round = verify_round + 1
"""

PREPARE_WARNING = """
draft_round = 0
published = False
"""

COUNT_DRAFT_RETURN = """
draft_round = draft_round + 1
"""

PUBLISH_WARNING = """
published = True
published_at = now().isoformat()
broadcast = {'warning_type': warning_type, 'level': level, 'area': area, 'towns': towns,
             'effective_at': effective_at, 'effective_until': effective_until}
"""


def resolve_departments(names: dict[str, str]) -> str:
    """Normalise `involved_departments` (codes or names, comma separated or a list) to codes."""
    table = ", ".join(f"'{name}': '{code}'" for code, name in names.items())
    return f"""
names = {{{table}}}
text = str(involved_departments or '')
for mark in ['[', ']', '"', "'", '，', '、', ';', '；', ' ']:
    text = text.replace(mark, ',')
departments = []
for item in text.split(','):
    code = names.get(item.strip(), item.strip())
    if code and code not in departments:
        departments.append(code)
involved_departments = departments
unknown_departments = [code for code in departments if code not in names.values()]
del names, text, departments, item, code
"""
