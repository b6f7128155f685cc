"""ChannelAttribution-layout path files: read journeys, run a model, write channel CSV.

Input: ``;``- or ``,``-separated columns ``path`` (channels joined by ``' > '``),
``total_conversions``, ``total_conversion_value`` (optional, defaults to the
conversions) and ``total_null`` (optional, 0). Output columns:
``channel_name,total_conversions,total_conversion_value`` plus ``removal_effect`` for
``markov`` and ``shapley_value`` for ``shapley``.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt

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

    Unquoted files with one field per column on every line (ChannelAttribution's own
    layout) are tokenised on the raw bytes with numpy (:func:`_read_unquoted`); anything
    else (quotes, ragged or blank lines, blank counts) goes through :mod:`csv`.
    """
    with open(source, "rb") as handle:
        header = handle.readline().decode("utf-8")
        body = handle.read()
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
    if set(columns) <= set(_KNOWN_COLUMNS) and len(set(columns)) == len(columns):
        table = _read_unquoted(body, len(columns), ip, ic, iv, inull, delimiter, sep)
        if table is not None:
            return table
    paths: list[str] = []
    conv: list[float] = []
    value: list[float] = []
    null: list[float] = []
    with open(source, newline="", encoding="utf-8") as text:
        reader = csv.reader(text, delimiter=delimiter)
        next(reader)
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            if len(row) != len(columns):
                raise ValueError(
                    f"line {line}: expected {len(columns)} fields ({delimiter.join(columns)}),"
                    f" got {len(row)}"
                )
            paths.append(row[ip])
            conv.append(_count(row, ic, columns, line))
            value.append(_count(row, iv, columns, line))
            null.append(_count(row, inull, columns, line) if inull >= 0 else 0.0)
    return PathTable.from_strings(paths, conv, null, value, sep=sep)


_KNOWN_COLUMNS = ("path", "total_conversions", "total_conversion_value", "total_null")
_SPACE, _TAB, _NEWLINE = 32, 9, 10
# Distinct channel names are few; ~64 bytes is far beyond any real one. Longer tokens take
# the general path rather than widening every token's key.
_MAX_TOKEN_BYTES = 64


def _read_unquoted(
    body: bytes, n_columns: int, ip: int, ic: int, iv: int, inull: int, delimiter: str, sep: str
) -> PathTable | None:
    """Vectorised reader of an unquoted file; ``None`` when the file needs the CSV path.

    Why bytes and numpy: a 200k-path file has ~2M channel tokens; Python string passes
    over them cost ~0.5 s, which is the whole budget of the ``pulse attribution paths``
    command (benchmarked end to end against ChannelAttribution). Here every pass is a numpy
    pass: field boundaries from the delimiter and newline positions, numbers parsed by
    numpy's C parser, tokens keyed by their bytes read as 64-bit words, keys factorised
    against the few distinct channels, and every token checked against its channel's bytes,
    so a key collision falls back instead of merging two channels.
    """
    if (
        len(sep) != 1 or not sep.isascii() or sep.isspace() or sep == delimiter
        or b'"' in body
    ):
        return None
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    body = body.rstrip(b"\n")
    if not body:
        return None
    buf = np.frombuffer(body, np.uint8)
    size = len(buf)
    newlines = np.flatnonzero(buf == _NEWLINE)
    lines = len(newlines) + 1
    per_line = n_columns - 1
    delims = np.flatnonzero(buf == ord(delimiter))
    if len(delims) != lines * per_line:
        return None  # ragged or blank lines
    bounds = delims.reshape(lines, per_line)
    line_start = np.concatenate(([0], newlines + 1))
    line_end = np.append(newlines, size)
    # Delimiters are sorted, so if each row's first and last lie on its line, every line
    # has exactly ``per_line`` of them.
    if not ((bounds[:, 0] >= line_start) & (bounds[:, -1] < line_end)).all():
        return None
    path_start = line_start if ip == 0 else bounds[:, ip - 1] + 1
    path_end = bounds[:, ip] if ip < per_line else line_end
    if 0 < ip < per_line:
        return None  # path between count columns: rare enough for the general path

    # Numbers: gather every line's count fields (plus its newline) and parse them in one
    # call. No per-byte wide arrays: on a 20 MB file those cost more in page faults than
    # the parsing itself.
    region_start = path_end + 1 if ip == 0 else line_start
    region_end = line_end + 1 if ip == 0 else path_start  # one separator byte included
    region_len = region_end - region_start
    padded = np.frombuffer(body + b"\n" + b"\0" * (_MAX_TOKEN_BYTES + 8), np.uint8)
    gather = np.arange(int(region_len.sum()), dtype=np.int64) + np.repeat(
        region_start - (np.cumsum(region_len) - region_len), region_len
    )
    numeric = padded[gather]
    if (numeric == ord(sep)).any():
        return None  # a separator outside the path column
    numeric[numeric == ord(delimiter)] = _SPACE
    try:
        with warnings.catch_warnings():
            # numpy warns (older) or raises (newer) on unparsable text; counted below.
            warnings.simplefilter("ignore")
            numbers = np.fromstring(numeric.tobytes(), dtype=np.float64, sep=" ")
    except ValueError:
        return None
    if len(numbers) != lines * per_line:
        return None  # blank or non-numeric counts
    numbers = numbers.reshape(lines, per_line)
    numeric_columns = [c for c in range(n_columns) if c != ip]
    conv = numbers[:, numeric_columns.index(ic)].copy()
    value = numbers[:, numeric_columns.index(iv)].copy()
    null = numbers[:, numeric_columns.index(inull)].copy() if inull >= 0 else np.zeros(lines)

    # Tokens: split path fields at the separator, strip blanks.
    # Every separator is inside a path field (checked on the count fields above). Path j
    # has tokens ``before[j] + j ..`` in file order: its start, then one per separator.
    seps = np.flatnonzero(buf == ord(sep))
    before = np.searchsorted(seps, path_start)
    lengths = np.diff(np.append(before, len(seps))).astype(np.int64) + 1
    first_token = before + np.arange(lines)
    is_first = np.zeros(len(seps) + lines, dtype=bool)
    is_first[first_token] = True
    token_start = np.empty(len(is_first), dtype=np.int64)
    token_start[first_token] = path_start
    token_start[~is_first] = seps + 1
    is_last = np.roll(is_first, -1)  # the token before the next path's first is a last
    token_end = np.empty(len(is_first), dtype=np.int64)
    token_end[is_last] = path_end
    token_end[~is_last] = seps
    while (move := (token_start < token_end) & _is_blank(padded[token_start])).any():
        token_start[move] += 1
    while (move := (token_end > token_start) & _is_blank(padded[token_end - 1])).any():
        token_end[move] -= 1
    width = token_end - token_start
    if len(width) and int(width.max()) > _MAX_TOKEN_BYTES:
        return None
    words = _token_words(padded, len(body), token_start, width)
    key = np.asarray(width, dtype=np.uint64)
    for k, word in enumerate(words):
        key = (key * np.uint64(0x9E3779B97F4A7C15)) ^ (word + np.uint64(k))
    distinct, codes = _factorise_keys(key)
    # One token per key (any one: repeated fancy-index writes may land in any order).
    first = np.zeros(len(distinct), dtype=np.int64)
    first[codes] = np.arange(len(codes))
    if not np.array_equal(width, width[first][codes]) or any(
        not np.array_equal(word, word[first][codes]) for word in words
    ):
        return None  # two different channels share a key
    names = [
        body[int(token_start[i]) : int(token_start[i] + width[i])].decode("utf-8")
        for i in first
    ]
    if any(name != name.strip() for name in names):
        return None  # non-ASCII blanks: str.strip semantics need the general path
    return PathTable.from_codes(names, codes, lengths, conv, null, value)


def _is_blank(chars: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    blank: npt.NDArray[np.bool_] = (chars == _SPACE) | (chars == _TAB)
    return blank


def _token_words(
    padded: npt.NDArray[np.uint8], size: int, start: npt.NDArray[np.int64],
    width: npt.NDArray[np.int64],
) -> list[npt.NDArray[np.uint64]]:
    """Each token's bytes as little-endian 64-bit words, zero past its end.

    ``padded`` is the body followed by at least ``_MAX_TOKEN_BYTES + 8`` bytes.
    """
    # A uint64 at every byte offset (unaligned reads): token words are single gathers.
    at = np.ndarray((size + _MAX_TOKEN_BYTES,), dtype="<u8", buffer=padded, strides=(1,))
    words = []
    for k in range(max((int(width.max()) + 7) // 8, 1) if len(width) else 0):
        left = np.clip(width - 8 * k, 0, 8)
        mask: npt.NDArray[np.uint64] = np.where(
            left >= 8, np.uint64(0xFFFFFFFFFFFFFFFF),
            (np.uint64(1) << (left.astype(np.uint64) * np.uint64(8))) - np.uint64(1),
        )
        words.append(at[start + 8 * k] & mask)
    return words


def _factorise_keys(key: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Distinct keys and each key's index; cheap when distinct keys are few (channels).

    Looking keys up in a small sorted table is ~10× faster than sorting all of them;
    keys missing from a sample's table are added in a second round.
    """
    table = _distinct(key[:65536])
    pos = np.minimum(np.searchsorted(table, key), len(table) - 1)
    missing = table[pos] != key
    if missing.any():
        table = _distinct(np.concatenate((table, key[missing])))
        pos = np.searchsorted(table, key)
    return table, pos.astype(np.int64)


def _distinct(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Sorted distinct values (``np.unique`` imports ``numpy.ma``: 35 ms of start-up)."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _count(row: list[str], index: int, columns: list[str], line: int) -> float:
    """A count or value field; blank means 0."""
    text = row[index].strip()
    try:
        return float(text) if text else 0.0
    except ValueError:
        raise ValueError(
            f"line {line}, field {columns[index]}: {text[:40]!r} is not a number"
        ) from None


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
