"""ChannelAttribution-layout path files: read journeys, run a model, write channel CSV.

Input: ``;``- or ``,``-separated columns ``path`` (channels joined by ``' > '``),
``total_conversions``, ``total_conversion_value`` (optional, defaults to the
conversions) and ``total_null`` (optional, 0). Output columns:
``channel_name,total_conversions,total_conversion_value`` plus ``removal_effect`` for
``markov`` and ``shapley_value`` for ``shapley``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from pulse_attribution.domain.markov import markov_model
from pulse_attribution.domain.paths import ChannelCredit, PathTable, heuristic_model
from pulse_attribution.domain.shapley import shapley_model

MODEL_ALIASES = {
    "first": "first_touch",
    "last": "last_touch",
    "first_touch": "first_touch",
    "last_touch": "last_touch",
    "last_non_direct": "last_non_direct",
    "linear": "linear",
    "position_based": "position_based",
    "markov": "markov",
    "shapley": "shapley",
}
NEEDS_MORE = {"time_decay": "timestamps", "w_shaped": "milestones", "full_path": "milestones"}


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def read_path_file(source: Path | str, sep: str = ">") -> PathTable:
    """Read a path file in one streaming pass (``;`` or ``,`` detected from the header).

    Unquoted files (ChannelAttribution's own layout) are split line by line, which is
    several times faster than a general CSV parser; files with quotes go through
    :mod:`csv`.
    """
    paths: list[str] = []
    conv: list[float] = []
    value: list[float] = []
    null: list[float] = []
    with open(source, newline="", encoding="utf-8") as handle:
        header = handle.readline()
        delimiter = _delimiter(header)
        columns = [c.strip().strip('"') for c in header.rstrip("\r\n").split(delimiter)]
        if "path" not in columns or "total_conversions" not in columns:
            raise ValueError(
                "expected columns path,total_conversions[,total_conversion_value,total_null];"
                f" got {columns}"
            )
        ip = columns.index("path")
        ic = columns.index("total_conversions")
        iv = columns.index("total_conversion_value") if "total_conversion_value" in columns else ic
        inull = columns.index("total_null") if "total_null" in columns else -1
        body = handle.read()
    rows: Iterable[list[str]]
    if '"' in body:
        rows = csv.reader(io.StringIO(body), delimiter=delimiter)
    else:
        rows = (line.split(delimiter) for line in body.splitlines())
    del body
    for row in rows:
        if not row or row == [""]:
            continue
        paths.append(row[ip])
        conv.append(float(row[ic] or 0))
        value.append(float(row[iv] or 0))
        null.append(float(row[inull] or 0) if inull >= 0 else 0.0)
    return PathTable.from_strings(paths, conv, null, value, sep=sep)


def run_path_model(
    table: PathTable, model: str, order: int = 1, max_exact: int = 15, samples: int = 2000
) -> tuple[ChannelCredit, dict[str, list[float]]]:
    """Channel credits plus the model's extra columns."""
    if model in NEEDS_MORE:
        raise ValueError(f"{model} needs {NEEDS_MORE[model]}, which path files do not have")
    name = MODEL_ALIASES.get(model)
    if name is None:
        raise ValueError(f"unknown model {model!r}; choose from {sorted(MODEL_ALIASES)}")
    if name == "markov":
        result = markov_model(table, order)
        return result.credit, {"removal_effect": [float(x) for x in result.removal_effects]}
    if name == "shapley":
        sresult = shapley_model(table, max_exact=max_exact, samples=samples)
        return sresult.credit, {"shapley_value": [float(x) for x in sresult.shapley_values]}
    return heuristic_model(table, name), {}


def format_credit(credit: ChannelCredit, extra: dict[str, list[float]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["channel_name", "total_conversions", "total_conversion_value", *extra])
    rows: Iterable[int] = range(len(credit.channels))
    for i in rows:
        writer.writerow(
            [
                credit.channels[i],
                repr(float(credit.conversions[i])),
                repr(float(credit.values[i])),
                *(repr(values[i]) for values in extra.values()),
            ]
        )
    return out.getvalue()
