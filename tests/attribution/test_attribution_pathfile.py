"""The vectorised path-file reader gives exactly what the general CSV reader gives.

``read_path_file`` tokenises unquoted files on raw bytes with numpy (the CLI is
benchmarked end to end against ChannelAttribution) and falls back to :mod:`csv` for
anything it cannot read that way. Each file below is read both ways; the tables must be
identical, whichever way the fast reader went.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pulse_attribution.pathfile as pathfile
from pulse_attribution.domain.paths import PathTable
from pulse_attribution.pathfile import read_path_file


def _general(path: Path, sep: str = ">") -> PathTable:
    fast = pathfile._read_unquoted
    pathfile._read_unquoted = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        return read_path_file(path, sep=sep)
    finally:
        pathfile._read_unquoted = fast  # type: ignore[assignment]


def _same(a: PathTable, b: PathTable) -> None:
    assert a.channels == b.channels
    for name in ("offsets", "codes", "conversions", "nulls", "values"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


FILES = {
    "channelattribution layout": (
        "path;total_conversions;total_conversion_value;total_null\n"
        "email > search > direct;2;40.5;3\nsearch;0;0;7\ndirect > direct;1;10;0\n"
    ),
    "comma, no value or null column": "path,total_conversions\na > b,1\nb,2\nc > a > b,0\n",
    "path last": "total_conversions;total_null;path\n1;2;x > y\n0;4;y\n",
    "irregular blanks and tabs": (
        "path;total_conversions;total_null\n  a>b  ;1;0\n\ta >\tb > c ;2;1\nb;0;1\n"
    ),
    "crlf and trailing newlines": "path;total_conversions;total_null\r\na > b;1;0\r\nb;1;2\r\n\r\n",
    "blank path is dropped": "path;total_conversions;total_null\n ;1;0\na > b;1;1\n",
    "unicode and inner spaces": (
        "path;total_conversions;total_null\nRéseau social > paid search;1;0\n"
        "paid search > 検索;2;1\n"
    ),
    "quoted (csv path)": 'path;total_conversions;total_null\n"a > b";1;0\n"b";0;2\n',
    "blank count (csv path)": "path;total_conversions;total_null\na > b;;2\nb;1;0\n",
    "long channel name": (
        "path;total_conversions;total_null\n" + "x" * 100 + " > a;1;0\na;0;1\n"
    ),
    "names sharing a 64-bit prefix": (
        "path;total_conversions;total_null\n"
        "campaign_alpha_2026 > campaign_alpha_2027;1;0\ncampaign_alpha_2027;1;1\n"
    ),
    "path between counts (csv path)": "total_conversions;path;total_null\n1;a > b;0\n2;b;1\n",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_fast_reader_matches_the_general_reader(tmp_path: Path, name: str) -> None:
    path = tmp_path / "paths.csv"
    path.write_bytes(FILES[name].encode("utf-8"))
    _same(read_path_file(path), _general(path))


def test_fast_reader_is_taken_on_the_channelattribution_layout(tmp_path: Path) -> None:
    """The parity test above would also pass if the fast reader always declined."""
    path = tmp_path / "paths.csv"
    path.write_bytes(FILES["channelattribution layout"].encode())
    body = path.read_bytes().split(b"\n", 1)[1]
    table = pathfile._read_unquoted(body, 4, 0, 1, 2, 3, ";", ">")
    assert table is not None
    assert table.channels == ("direct", "email", "search")
    assert [table.path(i) for i in range(table.n_paths)] == [
        ["email", "search", "direct"], ["search"], ["direct", "direct"]]
    assert table.values.tolist() == [40.5, 0.0, 10.0]


def test_many_random_paths_match(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    names = ["a", "bb", "ccc ccc", "paid_search_brand_terms", "x" * 17, "é"]
    lines = ["path;total_conversions;total_conversion_value;total_null"]
    for _ in range(3000):
        path = " > ".join(rng.choice(names, size=int(rng.integers(1, 9))))
        lines.append(f"{path};{rng.integers(0, 4)};{rng.random() * 100:.3f};{rng.integers(0, 5)}")
    path = tmp_path / "paths.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _same(read_path_file(path), _general(path))


def test_blank_channel_inside_a_path_is_refused_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "paths.csv"
    path.write_text("path;total_conversions;total_null\na >  > b;1;0\n")
    with pytest.raises(ValueError, match="empty channel name"):
        read_path_file(path)
    with pytest.raises(ValueError, match="empty channel name"):
        _general(path)


@pytest.mark.parametrize(("text", "message"), [
    ("path;total_conversions;total_null\na > b;1;0\nb;1\n", "line 3: expected 3 fields"),
    ("path;total_conversions;total_null\na > b;1;0\nb;one;2\n",
     "line 3, field total_conversions: 'one' is not a number"),
])
def test_bad_lines_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "paths.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_path_file(path)
