"""ChannelAttribution-layout path files: read journeys, run a model, write channel CSV.

Input: ``;``- or ``,``-separated columns ``path`` (channels joined by ``' > '``),
``total_conversions``, ``total_conversion_value`` (optional, defaults to the
conversions) and ``total_null`` (optional, 0). Output columns:
``channel_name,total_conversions,total_conversion_value`` plus ``removal_effect`` for
``markov`` and ``shapley_value`` for ``shapley``.
"""

from __future__ import annotations

import csv
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
    """Read a path file (``;`` or ``,`` detected from the header).

    Unquoted files (ChannelAttribution's own layout) are split column-wise in a few
    C-level string passes, several times faster than a general CSV parser; files with
    quotes or ragged lines go through :mod:`csv`.
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
    quoted = '"' in body
    body = body.replace("\r\n", "\n").strip("\n")
    n_columns = len(columns)
    lines = body.count("\n") + 1 if body else 0
    fields = body.replace("\n", delimiter).split(delimiter) if body else []
    del body
    if not quoted and len(fields) == lines * n_columns:
        # Column-wise: every line has exactly the header's number of fields.
        paths = fields[ip::n_columns]
        conv = _floats(fields[ic::n_columns])
        value = _floats(fields[iv::n_columns])
        null = _floats(fields[inull::n_columns]) if inull >= 0 else [0.0] * len(paths)
    else:
        with open(source, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            next(reader)
            for row in reader:
                if not row:
                    continue
                paths.append(row[ip])
                conv.append(float(row[ic] or 0))
                value.append(float(row[iv] or 0))
                null.append(float(row[inull] or 0) if inull >= 0 else 0.0)
    return PathTable.from_strings(paths, conv, null, value, sep=sep)


def _floats(texts: list[str]) -> list[float]:
    try:
        return list(map(float, texts))
    except ValueError:  # blanks mean 0
        return [float(t) if t.strip() else 0.0 for t in texts]


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
