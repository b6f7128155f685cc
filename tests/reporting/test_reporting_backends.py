"""Report numbers equal kpi_values (read with FINAL) on both store backends; the server
backend is read through the read-only ``pulse_reader`` user."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import (
    alert,
    insert_alerts,
    insert_kpis,
    kpi,
    period_kpis,
)

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.generate import produce_report
from pulse_reporting.storage import ReportingStorage
from pulse_shared.store import ReadOnlyStoreError, Store

MONTH = parse_period("monthly", "2034-05")
NOW = dt.datetime(2034, 6, 1, 6, tzinfo=dt.UTC)


@pytest.fixture
def reader(any_store: Store, request: pytest.FixtureRequest) -> Store:
    if any_store.backend == "server":
        from pulse_shared.store.server import ServerStore

        ch = request.getfixturevalue("clickhouse_server")
        return ServerStore(ch.url, user=ch.reader_user, password=ch.reader_password,
                           readonly=True)
    from pulse_shared.store.embedded import EmbeddedStore

    return EmbeddedStore(any_store.data_dir, readonly=True)  # type: ignore[attr-defined]


def _seed(store: Store) -> None:
    if store.query_value(
        "SELECT count() FROM kpi_values WHERE period = {p:String}", {"p": MONTH.label}
    ):
        return
    insert_kpis(store, period_kpis(MONTH, 1.1) + period_kpis(MONTH.previous(), 1.0))
    # a superseded value: FINAL must pick the later computed_at (the 1.1 x 10,000 above)
    insert_kpis(store, [kpi("spend", MONTH, 999.0,
                            computed_at=dt.datetime(2029, 1, 1, tzinfo=dt.UTC))])
    insert_alerts(store, [alert("bk-1", dt.datetime(2034, 5, 9, 10, tzinfo=dt.UTC))])


def test_report_numbers_equal_kpi_values(
    any_store: Store, reader: Store, tmp_path: Path
) -> None:
    _seed(any_store)
    result = produce_report(
        reader, "monthly", MONTH, formats=("json",), out_dir=tmp_path, model="linear",
        writer=any_store, now=NOW,
    )
    data = json.loads(result.paths["json"].read_text())
    truth = {
        (r["kpi"], r["dimension"], r["dimension_value"]): r["value"]
        for r in any_store.query(
            "SELECT kpi, dimension, dimension_value, value FROM kpi_values FINAL "
            "WHERE grain = 'month' AND period = {p:String}", {"p": MONTH.label},
        )
    }
    assert truth[("spend", "all", "")] == pytest.approx(11000.0)
    checked = 0
    for tile in data["headline"]:
        assert tile["value"] == truth.get((tile["kpi"], "all", "")), tile["kpi"]
        checked += tile["value"] is not None
    assert checked >= 12
    for row in data["channels"]:
        assert row["spend"] == truth[("spend", "channel", row["name"])]
        assert row["attributed_revenue"] == truth[
            ("attributed_revenue__linear", "channel", row["name"])]
        assert row["roas"] == truth.get(("roas__linear", "channel", row["name"]))
    assert [a["alert_id"] for a in data["alerts"]] == ["bk-1"]
    recorded = any_store.query(
        "SELECT format, model FROM reports FINAL WHERE report_id = {id:String}",
        {"id": result.report_id},
    )
    assert recorded == [{"format": "json", "model": "linear"}]


def test_reporting_reader_cannot_write(any_store: Store, reader: Store) -> None:
    with pytest.raises(ReadOnlyStoreError):
        ReportingStorage(reader).record_reports([{"report_id": "x"}])


@pytest.mark.clickhouse
def test_server_rejects_writes_from_the_reporting_user(clickhouse_server: object) -> None:
    from pulse_shared.store import StoreError
    from pulse_shared.store.server import ServerStore

    ch = clickhouse_server
    unflagged = ServerStore(ch.url, user=ch.reader_user, password=ch.reader_password)  # type: ignore[attr-defined]
    with pytest.raises(StoreError):
        unflagged.insert("reports", [{"report_id": "x", "report_kind": "weekly"}],
                         ("report_id", "report_kind"))


CREDIT_COLUMNS = (
    "conversion_id", "milestone", "model", "version", "account_id", "touchpoint_event_id",
    "channel", "campaign_id", "touched_at", "converted_at", "credit", "credited_revenue",
    "currency",
)


def _credit(conv: str, version: int, touch: str, channel: str, day: int, rev: str,
            model: str = "linear") -> dict[str, object]:
    from decimal import Decimal

    return {
        "conversion_id": conv, "milestone": "won", "model": model, "version": version,
        "account_id": f"acc-{conv}", "touchpoint_event_id": touch, "channel": channel,
        "campaign_id": "", "touched_at": dt.datetime(2034, 5, day, tzinfo=dt.UTC),
        "converted_at": dt.datetime(2034, 5, 20, tzinfo=dt.UTC), "credit": 0.5,
        "credited_revenue": Decimal(rev), "currency": "USD",
    }


def test_top_conversion_paths_use_latest_credit_version(reader: Store, any_store: Store) -> None:
    if not any_store.query_value(
        "SELECT count() FROM attribution_credits WHERE conversion_id LIKE 'rp-%'"
    ):
        any_store.insert("attribution_credits", [
            # rp-1 v1 (superseded): paid_search only; v2: paid_search → email → email
            _credit("rp-1", 1, "t0", "paid_search", 1, "1000"),
            _credit("rp-1", 2, "t1", "paid_search", 2, "400"),
            _credit("rp-1", 2, "t2", "email", 3, "300"),
            _credit("rp-1", 2, "t3", "email", 4, "300"),
            _credit("rp-2", 1, "t4", "paid_search", 5, "250"),
            _credit("rp-2", 1, "t5", "email", 6, "250"),
            _credit("rp-3", 1, "t6", "direct", 7, "80"),
            _credit("rp-3", 1, "t7", "direct", 7, "0", model="last_touch"),
        ], CREDIT_COLUMNS)
    paths = ReportingStorage(reader).paths("linear", "won", MONTH.start, MONTH.end)
    assert [(p.path, p.conversions, p.revenue) for p in paths] == [
        (("paid_search", "email"), 2, 1500.0),
        (("direct",), 1, 80.0),
    ]


AUGUST = parse_period("monthly", "2034-08")


def _at(month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2034, month, day, hour, tzinfo=dt.UTC)


def test_alerts_are_read_by_data_period_not_processing_time(
    any_store: Store, reader: Store, tmp_path: Path
) -> None:
    if not any_store.query_value(
        "SELECT count() FROM alert_events WHERE alert_id LIKE 'dp-%'"
    ):
        insert_alerts(any_store, [
            # August's data processed in September (a late run): August's report
            alert("dp-late", _at(9, 2, 9), period="2034-08", data_time=_at(9, 2, 8)),
            alert("dp-week", _at(8, 14, 6), period="2034-W32", data_time=_at(8, 14, 5)),
            # July's data processed in August, and September's: not August's
            alert("dp-prev", _at(8, 1, 3), period="2034-07", data_time=_at(8, 1, 2)),
            alert("dp-sep", _at(9, 1, 4), period="2034-09-01", data_time=_at(9, 1, 3)),
            # no data period (a freshness alert): by its data time
            alert("dp-fresh", _at(9, 1, 1), data_time=_at(8, 31, 23)),
            alert("dp-fresh-sep", _at(8, 31, 23), data_time=_at(9, 1, 0)),
        ])
    result = produce_report(
        reader, "monthly", AUGUST, formats=("json", "md"), out_dir=tmp_path,
        writer=any_store, now=_at(9, 3),
    )
    data = json.loads(result.paths["json"].read_text())
    # chronological by data: the month from its first day
    assert [a["alert_id"] for a in data["alerts"]] == ["dp-late", "dp-week", "dp-fresh"]
    late = next(a for a in data["alerts"] if a["alert_id"] == "dp-late")
    assert late["period"] == "2034-08"
    assert dt.datetime.fromisoformat(late["data_time"]) == _at(9, 2, 8)
    md = result.paths["md"].read_text()
    assert "| 2034-08 | 2034-09-02 08:00 UTC | warning | cac_spike |" in md
    assert "| 2034-W32 | 2034-08-14 05:00 UTC |" in md
    assert "2034-07" not in md.split("## Alerts fired")[1].split("##")[0]
