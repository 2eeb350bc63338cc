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

# Recompute the flattened limits of `level` from `limits[level]`, which may use the variable
# names themselves (accept_limit, ..., as the application sets them) or the handbook's names
# (accept, on_site, feedback, close, reminder_every, escalate_after); what is missing keeps
# its value.
FLATTEN_LIMITS = """
level_limits = limits.get(level) or {}
accept_limit = level_limits.get('accept_limit') or level_limits.get('accept') or accept_limit
feedback_limit = (level_limits.get('feedback_limit') or level_limits.get('feedback')
                  or level_limits.get('close') or feedback_limit)
close_limit = (level_limits.get('close_limit') or level_limits.get('close')
               or level_limits.get('feedback') or close_limit)
on_site_limit = (level_limits.get('on_site_limit') or level_limits.get('on_site')
                 or feedback_limit)
escalate_after = level_limits.get('escalate_after') or escalate_after
if level_limits.get('reminder_cycle'):
    reminder_cycle = level_limits.get('reminder_cycle')
elif level_limits.get('reminder_every'):
    reminder_cycle = reminder_cycle.split('/')[0] + '/' + level_limits.get('reminder_every')
del level_limits
"""

# Event sub-processes start from the data the case started with; their data shows the case's
# current level and limits too (the application reads the level from the latest step).
CURRENT_LEVEL = """
level = case_updates.get('level') or level
""" + FLATTEN_LIMITS

REGISTER = """
on_site_limit = on_site_limit or feedback_limit or close_limit
feedback_limit = feedback_limit or close_limit
close_limit = close_limit or feedback_limit
expert_level = None
back_to_normal = False
normal_value = None
weather_warnings = []
outcome = 'open'
case_updates = {'level': level, 'value': value, 'upgrades': 0, 'back_to_normal': False,
                'normal_value': None, 'weather_warnings': []}
"""

RECORD_FALSE_ALARM = """
outcome = verdict
archived_at = now().isoformat()
"""

GRADE_PUSH = """
rank = {'blue': 1, 'yellow': 2, 'orange': 3, 'red': 4}
if not level:
    level = case_updates.get('level')
if major_risk and rank.get(expert_level, 0) > 0:
    level = expert_level
if rank.get(case_updates.get('level'), 0) > rank.get(level, 0):
    level = case_updates.get('level')
del rank
""" + FLATTEN_LIMITS + """
case_updates['level'] = level
pushed = True
pushed_level = level
pushed_at = now().isoformat()
"""

SYNC_UPDATES = """
rank = {'blue': 1, 'yellow': 2, 'orange': 3, 'red': 4}
if rank.get(case_updates.get('level'), 0) > rank.get(level, 0):
    level = case_updates.get('level')
    level_upgraded = True
del rank
""" + FLATTEN_LIMITS + """
value = case_updates.get('value', value)
back_to_normal = case_updates.get('back_to_normal', False)
normal_value = case_updates.get('normal_value')
weather_warnings = case_updates.get('weather_warnings', [])
"""

APPLY_LEVEL_UPGRADE = """
rank = {'blue': 1, 'yellow': 2, 'orange': 3, 'red': 4}
new_level = upgrade.get('level')
level_upgraded = rank.get(new_level, 0) > rank.get(case_updates.get('level'), 0)
if level_upgraded:
    case_updates['level'] = new_level
if upgrade.get('value') is not None:
    case_updates['value'] = upgrade.get('value')
case_updates['upgrades'] = case_updates.get('upgrades', 0) + 1
del rank
""" + CURRENT_LEVEL

RECORD_BACK_TO_NORMAL = """
case_updates['back_to_normal'] = True
case_updates['normal_value'] = normal.get('value')
case_updates['normal_at'] = now().isoformat()
""" + CURRENT_LEVEL

RECORD_WEATHER_WARNING = """
rank = {'blue': 1, 'yellow': 2, 'orange': 3, 'red': 4}
received = {'warning_type': warning.get('warning_type'), 'level': warning.get('level'),
            'area': warning.get('area'), 'received_at': now().isoformat()}
case_updates['weather_warnings'] = (case_updates.get('weather_warnings', []) + [received])[-20:]
weather_outranks = rank.get(warning.get('level'), 0) > rank.get(case_updates.get('level'), 0)
del rank
""" + CURRENT_LEVEL

WEATHER_LEVEL_UPGRADE = """
case_updates['level'] = warning.get('level')
case_updates['upgrades'] = case_updates.get('upgrades', 0) + 1
""" + CURRENT_LEVEL

TRACKING = """
tracked_at = now().isoformat()
""" + CURRENT_LEVEL

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

SCHEDULE_ACCEPT = """
seconds = {}
for name, duration in [('accept', accept_limit), ('escalate', escalate_after)]:
    total = 0
    digits = ''
    in_time = False
    for char in duration.upper():
        if char == 'T':
            in_time = True
        elif char.isdigit():
            digits = digits + char
        elif char in ('W', 'D', 'H', 'M', 'S'):
            unit = {'W': 604800, 'D': 86400, 'H': 3600, 'M': 60, 'S': 1}[char]
            if char == 'M' and not in_time:
                unit = 2592000
            total = total + int(digits or '0') * unit
            digits = ''
    seconds[name] = total
cycle = reminder_cycle.split('/')
reminder_cycle = (cycle[0] + '/' + (now() + timedelta(seconds=seconds['accept'])).isoformat()
                  + '/' + cycle[-1])
supervise_after = ((limits.get(level) or {}).get('supervise_after')
                   or f"PT{seconds['accept'] + seconds['escalate']}S")
del seconds, name, duration, total, digits, in_time, char, unit, cycle
"""

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
