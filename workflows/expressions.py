"""Conditions written for other engines (FEEL, JUEL) and the Python expression to write instead.

Camunda 7 writes conditions as JUEL (`${x > 1}`, `#{approved}`), Camunda 8 and many exports as
FEEL (`= x > 1`); this engine evaluates Python expressions. A designer importing such a file
is told the Python to write rather than a bare syntax error.
"""

from __future__ import annotations

import re

_JUEL = re.compile(r"^\s*[$#]\{(?P<body>.*)\}\s*$", re.S)
_FEEL = re.compile(r"^\s*=(?!=)\s*(?P<body>.+?)\s*$", re.S)
_WORDS = (
    (re.compile(r"&&"), " and "), (re.compile(r"\|\|"), " or "),
    (re.compile(r"!(?!=)"), " not "), (re.compile(r"\btrue\b"), "True"),
    (re.compile(r"\bfalse\b"), "False"), (re.compile(r"\bnull\b"), "None"),
    (re.compile(r"\beq\b"), "=="), (re.compile(r"\bne\b"), "!="),
    (re.compile(r"\bgt\b"), ">"), (re.compile(r"\blt\b"), "<"),
    (re.compile(r"\bge\b"), ">="), (re.compile(r"\ble\b"), "<="),
    (re.compile(r"\bempty\s+(\w+)"), r"not \1"),
)
# FEEL compares with a single '=': every '=' not part of '<=', '>=', '!=' or '=='.
_FEEL_EQUALS = re.compile(r"(?<![<>!=])=(?!=)")


def python_for_foreign(text: str) -> str | None:
    """The Python expression for a FEEL or JUEL condition, or None if `text` is neither."""
    juel = _JUEL.match(text)
    feel = None if juel else _FEEL.match(text)
    found = juel or feel
    if found is None:
        return None
    body = found["body"].strip()
    if feel is not None:
        body = _FEEL_EQUALS.sub("==", body)
    for pattern, replacement in _WORDS:
        body = pattern.sub(replacement, body)
    return " ".join(body.split()) or "True"
