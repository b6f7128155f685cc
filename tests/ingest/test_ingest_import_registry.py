"""Import formats are registered once: a new vendor is one module with one ``@csv_import``
mapping (plus its name in ``VENDORS``); the mapping entry point, the CLI listing and the
HTTP route find it through the registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pulse_ingest.domain import imports
from pulse_ingest.domain.imports import (
    IMPORTS,
    VENDORS,
    MappedRows,
    MappingError,
    Row,
    csv_import,
    map_export,
)
from pulse_ingest.domain.imports.base import map_each, parse_date, parse_decimal, read_export

TOY_EXPORT = "Report: toy ads\nDay,Spend\n2026-11-01,12.50\nnot a day,3\nTotal,15.50\n"


@pytest.fixture
def toy_ads() -> Iterator[str]:
    """A toy vendor (spend per day), registered for one test only."""

    @csv_import("toy_ads", "Toy Ads daily report", ("spend",))
    def map_toy_ads(text: str) -> MappedRows:
        def one(row: Row) -> list[tuple[str, dict[str, Any]]]:
            day = parse_date(*row.required("Day"))
            return [("spend", {"date": day.isoformat(), "channel": "display",
                               "amount": str(parse_decimal(*row.cell("Spend")))})]

        return map_each(read_export(text, [("Day",), ("Spend",)]), one)

    yield "toy_ads"
    del IMPORTS["toy_ads"]


def test_every_vendor_module_registered_its_format_in_order() -> None:
    assert list(IMPORTS) == list(VENDORS)
    for name, entry in IMPORTS.items():
        module = getattr(imports, name)
        assert entry.mapper.__module__ == module.__name__ and entry.kinds


def test_a_registered_toy_format_maps_through_the_entry_point(toy_ads: str) -> None:
    mapped = map_export(toy_ads, TOY_EXPORT)
    assert mapped.received == 2  # preamble and total skipped
    assert mapped.rows == {"spend": [{"date": "2026-11-01", "channel": "display",
                                      "amount": "12.50"}]}
    assert [(e.index, e.field) for e in mapped.errors] == [(1, "Day")]
    with pytest.raises(MappingError, match="toy_ads"):
        map_export("nope", "")  # the error lists the new format too


def test_the_cli_lists_a_registered_toy_format(toy_ads: str) -> None:
    from typer.testing import CliRunner

    from pulse_ingest.cli import app

    result = CliRunner().invoke(app, ["sources", "--format", "json"])
    assert result.exit_code == 0, result.output
    listed = {s["name"]: s for s in json.loads(result.output)}
    assert listed[toy_ads] == {"name": toy_ads, "title": "Toy Ads daily report",
                               "kinds": ["spend"]}


def test_the_toy_format_is_gone_after_its_test_and_names_are_unique() -> None:
    assert "toy_ads" not in IMPORTS
    with pytest.raises(ValueError, match="already registered"):
        csv_import("google_ads", "again", ("spend",))(lambda text: MappedRows())
