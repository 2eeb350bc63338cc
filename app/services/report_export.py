"""A report's figures as tables, simple SVG charts, an XLSX workbook and a PDF document.

The same tables feed the workbook and the PDF; the PDF is laid out as an official document
(title, document number, date, sections, tables, charts) by WeasyPrint with the CJK fonts of
the system (Debian's fonts-wqy-zenhei). Charts are drawn here as plain SVG: ECharts draws the
pages in the browser, but a PDF needs them without JavaScript.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from app.i18n import _l
from app.services import figures

# The names the case list gives levels and source types: one wording everywhere.
from app.services.case_counts import LEVEL_LABELS as LEVEL_LABELS
from app.services.case_counts import SOURCE_LABELS as SOURCE_LABELS

LEVEL_COLOURS = {"red": "#d7263d", "orange": "#f18f01", "yellow": "#e8c547", "blue": "#2e86de"}
BAR_COLOUR = "#1f5fa8"


def format_value(kind: str, value: Any) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "seconds":
        minutes = int(round(float(value) / 60))
        if minutes < 60:
            return str(_l("%(m)d min", m=minutes))
        return str(_l("%(h)d h %(m)02d min", h=minutes // 60, m=minutes % 60))
    return str(int(value))


def format_figure(key: str, value: Any) -> str:
    return format_value(figures.FIGURES_BY_KEY[key].kind, value)


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Any]]


def comparison_table(content: dict[str, Any]) -> Table:
    rows = []
    for figure in figures.FIGURES:
        rows.append([str(figure.label)] + [
            format_value(figure.kind, content[which].get(figure.key))
            for which in ("current", "previous", "last_year")])
    return Table(str(_l("Figures")), [str(_l("Figure")), str(_l("This period")),
                                      str(_l("Previous period")),
                                      str(_l("Same period last year"))], rows)


# The columns of a breakdown table: the figures a unit is assessed and ranked by.
BREAKDOWN_FIGURES = ("opened", "pushed", "accept_on_time_rate", "arrive_on_time_rate",
                     "feedback_on_time_rate", "close_on_time_rate", "closure_rate",
                     "false_alarm_rate", "medium_loops", "big_loops", "overdue", "accept_mean",
                     "close_mean")


def breakdown_table(by: str, entries: list[dict[str, Any]]) -> Table:
    header = [str(figures.GROUPING_LABELS[by])] + [
        str(figures.FIGURES_BY_KEY[k].label) for k in BREAKDOWN_FIGURES]
    rows = [[e["name"]] + [format_figure(k, e["values"].get(k)) for k in BREAKDOWN_FIGURES]
            for e in entries]
    return Table(str(_l("By %(group)s", group=figures.GROUPING_LABELS[by])), header, rows)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def tables(content: dict[str, Any], scenario_names: dict[str, str]) -> list[Table]:
    """Every table of a report, in the order of the document."""
    found = [comparison_table(content)]
    for by, entries in content["breakdowns"].items():
        found.append(breakdown_table(by, entries))
    levels = content["levels"]
    found.append(Table(str(_l("Cases opened by level")), [str(_l("Level")), str(_l("Cases"))],
                       [[str(LEVEL_LABELS[lv]), levels.get(lv, 0)] for lv in LEVEL_LABELS]))
    alerts = content["alerts"]
    found.append(Table(str(_l("Alerts by source")), [str(_l("Source")), str(_l("Alerts"))],
                       [[str(SOURCE_LABELS.get(k, k)), v]
                        for k, v in sorted(alerts["source"].items())]))
    found.append(Table(str(_l("Alerts by scenario")), [str(_l("Scenario")), str(_l("Alerts"))],
                       [[scenario_names.get(k, k), v]
                        for k, v in sorted(alerts["scenario"].items(), key=lambda i: -i[1])]))
    found.append(Table(str(_l("Alerts by level")), [str(_l("Level")), str(_l("Alerts"))],
                       [[str(LEVEL_LABELS.get(k, _l("None"))), v]
                        for k, v in sorted(alerts["level"].items())]))
    quality = content["quality"]
    found.append(Table(str(_l("Data quality")), [str(_l("Figure")), str(_l("Count"))],
                       [[str(_l("Issues found")), quality["issues"]],
                        [str(_l("Corrections made")), quality["corrected"]]]))
    found.append(Table(
        str(_l("Sensing data quality (Art 8)")),
        [str(_l("Source system")), str(_l("Readings")), str(_l("Completeness")),
         str(_l("Timeliness")), str(_l("Accuracy")), str(_l("Online rate"))],
        [[f["source"], f["readings"], *[_percent(f[name]) for name in
                                        ("completeness", "timeliness", "accuracy", "online_rate")]]
         for f in content.get("feeds") or []]))
    found.append(Table(str(_l("Trend")), [str(_l("Date")), str(_l("Cases opened")),
                                          str(_l("Cases closed")),
                                          str(_l("False alarms and device faults"))],
                       [[t["bucket"], t["opened"], t["closed"], t["false_alarms"]]
                        for t in content["trend"]]))
    found.append(Table(str(_l("Overdue, not closed")),
                       [str(_l("Case")), str(_l("Scenario")), str(_l("Warning item")),
                        str(_l("Level")), str(_l("Place")), str(_l("Deadline"))],
                       [[c["case_no"], scenario_names.get(c["scenario"], c["scenario"]),
                         c["item"], str(LEVEL_LABELS.get(c["level"], c["level"])), c["place"],
                         c["due_local"]]
                        for c in content["overdue_cases"]]))
    return found


# ---------------------------------------------------------------------------------------------
# SVG charts for the PDF


def bar_chart(title: str, items: list[tuple[str, float]], *, colours: list[str] | None = None,
              width: int = 640, height: int = 220) -> str:
    """A horizontal-axis bar chart as SVG text."""
    left, bottom, top = 40, 40, 28
    plot_h = height - bottom - top
    peak = max((v for _, v in items), default=0) or 1
    step = (width - left - 10) / max(len(items), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">',
             f'<text x="{left}" y="18" font-size="13">{escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
             f'y2="{height - bottom}" stroke="#888"/>']
    for n, (label, value) in enumerate(items):
        bar_h = plot_h * value / peak
        x = left + n * step + step * 0.15
        y = height - bottom - bar_h
        colour = (colours[n] if colours and n < len(colours) else BAR_COLOUR)
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" '
                     f'height="{bar_h:.1f}" fill="{colour}"/>')
        parts.append(f'<text x="{x + step * 0.35:.1f}" y="{y - 3:.1f}" font-size="10" '
                     f'text-anchor="middle">{value:g}</text>')
        parts.append(f'<text x="{x + step * 0.35:.1f}" y="{height - bottom + 14}" '
                     f'font-size="10" text-anchor="middle">{escape(label[:8])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, labels: list[str], series: list[tuple[str, list[float], str]],
               *, width: int = 640, height: int = 220) -> str:
    """A line chart of several series over the same labels, as SVG text."""
    left, bottom, top = 40, 40, 40
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((v for _, values, _c in series for v in values), default=0) or 1
    count = max(len(labels) - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">',
             f'<text x="{left}" y="18" font-size="13">{escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
             f'y2="{height - bottom}" stroke="#888"/>']
    for n, (name, _values, colour) in enumerate(series):
        parts.append(f'<rect x="{left + n * 120}" y="26" width="10" height="10" '
                     f'fill="{colour}"/><text x="{left + n * 120 + 14}" y="35" '
                     f'font-size="10">{escape(name)}</text>')
    for _name, values, colour in series:
        points = " ".join(f"{left + plot_w * i / count:.1f},"
                          f"{height - bottom - plot_h * v / peak:.1f}"
                          for i, v in enumerate(values))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="2"/>')
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(f'<text x="{left + plot_w * i / count:.1f}" '
                         f'y="{height - bottom + 14}" font-size="10" '
                         f'text-anchor="middle">{escape(label[5:] or label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def charts(content: dict[str, Any], scenario_names: dict[str, str]) -> list[str]:
    """The report's charts as SVG: the trend, levels and scenarios."""
    trend = content["trend"]
    labels = [t["bucket"] for t in trend]
    found = [line_chart(str(_l("Trend")), labels, [
        (str(_l("Cases opened")), [t["opened"] for t in trend], "#1f5fa8"),
        (str(_l("Cases closed")), [t["closed"] for t in trend], "#2a9d8f"),
        (str(_l("False alarms and device faults")), [t["false_alarms"] for t in trend],
         "#999999")])]
    levels = content["levels"]
    found.append(bar_chart(str(_l("Cases opened by level")),
                           [(str(LEVEL_LABELS[lv]), levels.get(lv, 0)) for lv in LEVEL_LABELS],
                           colours=list(LEVEL_COLOURS.values())))
    by_scenario = sorted(content["alerts"]["scenario"].items(), key=lambda i: -i[1])[:15]
    found.append(bar_chart(str(_l("Alerts by scenario")),
                           [(scenario_names.get(k, k), v) for k, v in by_scenario]))
    return found


# ---------------------------------------------------------------------------------------------
# Files


def xlsx(title: str, all_tables: list[Table]) -> bytes:
    """One worksheet per table, the title above each."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    used: set[str] = set()
    for n, table in enumerate(all_tables, start=1):
        # Sheet names: at most 31 characters, none of []:*?/\ and unique.
        name = "".join(c for c in table.title if c not in "[]:*?/\\")[:28] or f"Sheet{n}"
        if name in used:
            name = f"{name[:25]}-{n}"
        used.add(name)
        sheet = book.create_sheet(name)
        sheet.append([title])
        sheet["A1"].font = Font(bold=True)
        sheet.append([table.title])
        sheet.append(table.header)
        for cell in sheet[3]:
            cell.font = Font(bold=True)
        for row in table.rows:
            sheet.append(row)
        sheet.column_dimensions["A"].width = 28
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pdf(html: str) -> bytes:
    """Render an HTML document (with inline SVG charts) to PDF."""
    from weasyprint import HTML

    return bytes(HTML(string=html).write_pdf())
