"""Machine-readable exports: JSON (the whole report) and CSV (one file per table).

CSV files are opened in spreadsheets, which run a cell starting with ``=``, ``+``, ``-`` or
``@`` as a formula (CSV injection). Every CSV cell passes :func:`csv_cell`: text through
:func:`pulse_shared.safe_text.spreadsheet_safe`, numbers as numbers. JSON is data, escaped
by the encoder.
"""

from __future__ import annotations

from pulse_reporting.domain.model import Report
from pulse_reporting.domain.tables import Cell, report_tables
from pulse_shared.safe_text import csv_text, spreadsheet_safe


def csv_cell(value: Cell) -> str | float | int:
    """One CSV cell: None as empty, numbers as numbers, text that a spreadsheet would take
    for a formula prefixed with ``'`` (a plain signed number such as ``-12.5`` is kept)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    return spreadsheet_safe(value)


def render_json(report: Report) -> str:
    return report.model_dump_json(indent=2)


def meta_rows(report: Report) -> list[tuple[str, str]]:
    """The report's header as key/value rows (``meta.csv``): period, model, completeness."""
    m = report.meta
    return [
        ("report_id", m.report_id),
        ("kind", m.kind),
        ("period", m.period),
        ("period_start", m.period_start.isoformat()),
        ("period_end", m.period_end.isoformat()),
        ("complete", "true" if m.complete else "false"),
        ("data_as_of", m.data_as_of.isoformat() if m.data_as_of else ""),
        ("model", m.model),
        ("model_label", m.model_label),
        ("default_model", m.default_model),
        ("beside_model", m.beside_model),
        ("currency", m.currency),
        ("generated_at", m.generated_at.isoformat()),
    ]


def render_csv(report: Report) -> dict[str, str]:
    """``{table name: CSV text}``; raw numbers (no currency signs, rates as fractions).
    ``meta`` holds the header (period, model, ``complete``, data as of)."""
    out: dict[str, str] = {"meta": csv_text(
        [["key", "value"], *([csv_cell(v) for v in row] for row in meta_rows(report))])}
    for table in report_tables(report):
        out[table.name] = csv_text([[csv_cell(c.key) for c in table.columns],
                                    *([csv_cell(v) for v in row] for row in table.rows)])
    return out
