"""Every page each role reaches from the menus, in Chinese: no English word a person reads.

A walk with the test client from the home page, following the links of every page (same
site, GET), with real cases in several states. What may stay Latin is small and listed:
codes (case numbers, point and item codes, hashes), names of things (API, BPMN, PDF) and
units."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest

from app.models import Role

# Names and units that are Latin in Chinese text too.
ALLOWED = frozenset({
    "API", "BPMN", "PDF", "JPEG", "PNG", "WebP", "KB", "MB", "IoT", "LEL", "ID", "URL",
    "English", "XLSX", "CSV", "JSON", "OpenAPI", "SHA", "Bearer", "Authorization", "key",
    "min", "kPa", "MPa", "mm", "ppm", "mg", "dB", "km", "h", "m", "s", "d", "pk", "v",
    "SQLite", "PostgreSQL", "MQTT", "Prometheus", "Mosquitto", "Excel", "WeCom", "DingTalk",
})
# Pages a walk does not open: files, other languages, leaving, the machine API.
SKIP = re.compile(r"^/(static|api|logout|language|favicon)|/attachments/\d+|/export|\.xlsx|\.pdf"
                  r"|/files/|\.bpmn")
PER_ROLE = 45

ROLES = [
    (Role.RESPONDER, "town.02"), (Role.BUSINESS_ADMIN, "scenario.gas"),
    (Role.DEPARTMENT_HEAD, "industry.construction"),
    (Role.LEADER_IN_CHARGE, "industry.construction"), (Role.DISTRICT_OFFICE, "district"),
    (Role.AUDITOR, "district"), (Role.TECH_ADMIN, "district"),
    (Role.TECH_UNIT_HEAD, "district"), (Role.SYSTEM_ADMIN, "district"),
    (Role.SECURITY_ADMIN, "district"), (Role.AUDIT_ADMIN, "district"),
]


def visible_text(page: str) -> str:
    """What a person reads: the page without markup, scripts, and code samples."""
    page = re.sub(r"<(script|style|code|kbd|pre|svg|template)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<option[^>]*>", " ", page)  # options are read, keep their text
    return unescape(re.sub(r"<[^>]+>", " ", page))


def english_words(text: str) -> set[str]:
    """Latin words that are neither codes nor listed names and units. Text in Chinese quotes
    is a literal (a command, an example of bad input) and a word ending in "/" a folder."""
    found = set()
    text = re.sub(r"“[^”]*”", " ", text)
    for token in re.findall(r"[A-Za-z0-9][A-Za-z0-9_.\-/%]*", text):
        if token.endswith("/") or not re.search(r"[A-Za-z]", token):
            continue
        word = token.strip(".-/%_")
        if not word or word in ALLOWED or word.lstrip("%") in ALLOWED:
            continue
        # Codes: upper case with digits or separators (RQ-2026-000001, GAS-MH-0001, CH4,
        # scenario.gas), hashes and file names.
        if re.fullmatch(r"[A-Z0-9][A-Z0-9_\-./]*", word) and (len(word) <= 3 or re.search(
                r"[\d\-_.]", word) or word.isupper()):
            continue
        if re.search(r"\d", word) or re.fullmatch(r"[a-z0-9]+([._-][a-z0-9]+)+", word):
            continue  # a code or id in lower case (industry.construction, a1b2c3, v1)
        if word.endswith((".bpmn", ".json", ".png", ".pdf")):
            continue
        found.add(word)
    return found


def _context(text: str, word: str) -> str:
    at = re.search(rf"(?<![A-Za-z]){re.escape(word)}", text)
    start = at.start() if at else 0
    return f"{word!r} in …{text[max(start - 30, 0):start + len(word) + 30]}…"


def _links(page: str) -> Iterator[str]:
    for href in re.findall(r'<a\b[^>]*\bhref="([^"#]+)', page):
        url = unescape(href)
        if url.startswith("/") and not url.startswith("//") and not SKIP.search(url):
            yield url


def _shape(url: str) -> str:
    """Pages that differ only in ids or in a query value are one page to the walk."""
    parts = urlsplit(url)
    path = re.sub(r"/\d+", "/N", parts.path)
    path = re.sub(r"/[A-Z]{2,}-\d{4}-\d+", "/CASE", path)
    keys = sorted({k for k, _ in parse_qsl(parts.query)} - {"page"})
    return f"{path}?{'&'.join(keys)}"


@pytest.fixture
def world(published, point, send, drive, people, clock):
    """Cases in several states: waiting for assessment, for acceptance, for verification,
    and closed."""
    for n, stop in enumerate(("Activity_assessment", "Activity_accept", "Activity_verify",
                              None)):
        code = point(f"GAS-MH-{n:04d}", "gas")
        clock.advance(minutes=3)
        case_no = send("gas", "ch4_lel", 30.0 + n * 15, code)["case_no"]
        drive(case_no, people, stop_at=stop)


@pytest.mark.parametrize(("role", "node"), ROLES, ids=[r.value for r, _ in ROLES])
def test_every_page_of_the_role_reads_in_chinese(app, world, as_role, role, node):
    browser = as_role((role, node))
    seen: set[str] = set()
    queue = ["/"]
    problems: dict[str, set[str]] = {}
    opened = 0
    while queue and opened < PER_ROLE:
        url = queue.pop(0)
        if _shape(url) in seen:
            continue
        seen.add(_shape(url))
        response = browser.get(url)
        opened += 1
        assert response.status_code < 500, url
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        page = response.get_data(as_text=True)
        text = " ".join(visible_text(page).split())
        words = english_words(text)
        if words:
            problems[url] = {_context(text, w) for w in words}
        queue.extend(u for u in _links(page) if _shape(u) not in seen)
    assert opened > 3, "the walk reached too few pages"
    assert not problems, "\n".join(f"{u}: {sorted(w)}" for u, w in problems.items())


def test_the_check_finds_english_and_lets_codes_through():
    text = visible_text('<p>提交 Submit <small>RQ-2026-000001 GAS-MH-0001 ch4_lel 30.0 %LEL</small>'
                        ' scenario.gas 371ceeed <code>flask run</code> 以“ok”填写 bpmn/ '
                        '<option value="x">Being handled</option></p>')
    assert english_words(text) == {"Submit", "Being", "handled"}
