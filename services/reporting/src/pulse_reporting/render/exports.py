"""Machine-readable exports: JSON (the whole report) and CSV (one file per table)."""

from __future__ import annotations

import csv
import io

from pulse_reporting.domain.model import Report
from pulse_reporting.domain.tables import report_tables


def render_json(report: Report) -> str:
    return report.model_dump_json(indent=2)


def render_csv(report: Report) -> dict[str, str]:
    """``{table name: CSV text}``; raw numbers (no currency signs, rates as fractions)."""
    out: dict[str, str] = {}
    for table in report_tables(report):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.key for c in table.columns])
        for row in table.rows:
            writer.writerow(["" if v is None else v for v in row])
        out[table.name] = buffer.getvalue()
    return out
