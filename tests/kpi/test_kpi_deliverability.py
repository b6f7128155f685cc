"""E-mail deliverability KPIs (issue 17, slice S3): ESP exports → KPI service → kpi_values.

The samples tests/data/sendgrid_stats.csv and tests/data/mailchimp_campaigns.csv, moved to
2013 (a year no other test uses: the stores are shared by the session), are imported,
stored by the deliverability consumer's processor and recomputed by its follow-up, on both
backends. Hand-checked numbers (rates over sent; open/click over delivered):

* 2013-11-03: SendGrid mail 8000 sent / 7600 delivered / 300 hard + 100 soft / 16
  complaints / 30 unsubscribes / 2800 opens / 400 clicks, news 2000 / 1996 / 2 + 2 / 0 / 4 /
  600 / 80, Mailchimp a1b2c3d4e5 (news) 12000 / 11820 / 120 + 60 / 6 / 24 / 4728 / 1182 →
  sent 22000, delivered 21416, bounces 584, hard 422, complaints 22 (exactly 0.1 %).
* 2013-11-04: SendGrid mail sent 0 → every rate n/a (None), counts 0.
* Week 2013-W44 (Oct 28 – Nov 3), mail.pulse-demo.io: sent 18000, bounces 150 + 400 = 550
  (3.06 %), complaints 5 + 16 = 21 (0.117 %): both above the shipped alert thresholds;
  news.pulse-demo.io: 18000, 194, 7 — below both.
* Month 2013-11: sent 56800, delivered 55356, bounces 1444, complaints 68.
* Campaign a1b2c3d4e5: open 4728 / 11820 = 0.4, click 1182 / 11820 = 0.1.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_alerts.domain.evaluate import evaluate
from pulse_alerts.domain.rules import ThresholdRule, load_rules
from pulse_alerts.kpi_catalog import installed_catalog
from pulse_alerts.main import default_rules_text
from pulse_ingest.domain.imports import map_export
from pulse_ingest.domain.normalize import normalise_rows
from pulse_kpi.app import KpiComponent, SilentBus
from pulse_kpi.cli import app as kpi_cli
from pulse_kpi.domain import deliverability
from pulse_kpi.domain.compute import compute
from pulse_kpi.domain.deliverability import DeliverabilityRow
from pulse_kpi.domain.facts import Facts, Scope
from pulse_kpi.main import build
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import KpiStorage, deliverability_processor
from pulse_reporting.domain.deliverability import deliverability_section
from pulse_reporting.storage import ReportingStorage
from pulse_shared import access, kpi_catalog
from pulse_shared.bus import make_broker
from pulse_shared.events import EmailDeliveryStats, Grain, KpiSnapshot
from pulse_shared.periods import Period
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

DATA = Path(__file__).resolve().parents[1] / "data"
Y = 2013
KPIS = kpi_catalog.DELIVERABILITY_KPIS


def sample_events() -> list[EmailDeliveryStats]:
    """Both ESP samples through their import mappings and ingest's validation, in 2013."""
    events: list[EmailDeliveryStats] = []
    for source, name in (("sendgrid_stats", "sendgrid_stats.csv"),
                         ("mailchimp_campaigns", "mailchimp_campaigns.csv")):
        text = (DATA / name).read_text().replace("2026", str(Y))
        mapped = map_export(source, text)
        batch = normalise_rows("deliverability", mapped.rows["deliverability"], "salt")
        assert mapped.errors == [] and batch.errors == []
        events += [e for e in batch.events if isinstance(e, EmailDeliveryStats)]
    return events


# ------------------------------------------------------------------ pure
def test_rates_are_na_not_zero_without_a_denominator() -> None:
    counts = deliverability.DeliveryCounts()
    assert counts.values() == {"emails_sent": 0.0, "emails_delivered": 0.0,
                               **{k: None for k in KPIS[2:]}}
    counts.add(DeliverabilityRow(dt.date(Y, 1, 1), "d", "", sent=10, hard_bounces=10))
    values = counts.values()
    assert (values["bounce_rate"], values["delivery_rate"]) == (1.0, 0.0)
    assert values["open_rate"] is None and values["click_rate"] is None  # nothing delivered


def test_compute_emits_totals_and_breakdowns_of_the_flow_periods() -> None:
    rows = [DeliverabilityRow(dt.date(Y, 11, 3), "a.example", "c1", 100, 90, 2, 1, 1, 0, 45, 9),
            DeliverabilityRow(dt.date(Y, 11, 3), "b.example", "", 100, 100, 0, 0, 0, 0, 10, 1)]
    day = dt.date(Y, 11, 3)
    values = compute(Facts(deliverability=rows),
                     Scope(flow_days=frozenset({day}),
                           dimensions=("all", "sending_domain", "campaign")), day)
    got = {(v.kpi, v.grain, v.dimension, v.dimension_value): v.value for v in values
           if v.kpi in KPIS and v.grain is Grain.DAY}
    assert got[("emails_sent", Grain.DAY, "all", "")] == 200.0
    assert got[("bounce_rate", Grain.DAY, "all", "")] == 0.015
    assert got[("open_rate", Grain.DAY, "sending_domain", "a.example")] == 0.5
    assert got[("click_rate", Grain.DAY, "campaign", "c1")] == 0.1
    assert ("emails_sent", Grain.DAY, "campaign", "") not in got  # no campaign: no member
    # A member with values before but no rows now (a corrected export moved them) drops
    # to 0 sent and n/a rates instead of going stale.
    moved = compute(Facts(), Scope(flow_days=frozenset({day}), dimensions=("sending_domain",),
                                   known_deliverability_members=frozenset(
                                       {("day", day, "sending_domain", "a.example")})), day)
    assert {(v.kpi, v.value) for v in moved if v.kpi in ("emails_sent", "bounce_rate")} == {
        ("emails_sent", 0.0), ("bounce_rate", None)}


def test_catalog_family_dimensions_and_access() -> None:
    for name in KPIS:
        entry = kpi_catalog.BY_NAME[name]
        assert entry.family is kpi_catalog.Family.DELIVERABILITY
        assert entry.dimensions == ("all", "sending_domain", "campaign")
    assert kpi_catalog.BY_NAME["complaint_rate"].direction is kpi_catalog.Direction.DOWN
    assert "sending_domain" in access.ALL_DIMENSIONS
    assert "email_deliverability" in access.SCOPES[access.Role.MARKETING_OPS].tables
    assert "email_deliverability" not in access.SCOPES[access.Role.CX].tables
    assert kpi_catalog.Family.DELIVERABILITY not in access.SCOPES[access.Role.CX].kpi_families


# ------------------------------------------------------------------ alert rule templates
def snapshot(kpi: str, value: float | None, member: str = "mail.pulse-demo.io") -> KpiSnapshot:
    return KpiSnapshot(kpi=kpi, grain=Grain.WEEK, period=f"{Y}-W44",
                       period_start=dt.date(Y, 10, 28), dimension="sending_domain",
                       dimension_value=member, value=value, unit="ratio",
                       computed_at=dt.datetime(Y, 11, 4, tzinfo=dt.UTC))


def test_shipped_deliverability_rules_parse_and_fire_on_a_bad_week() -> None:
    rules = load_rules(default_rules_text(), "default.yaml", installed_catalog())
    complaint = rules.by_name("deliverability_complaint_rate_high")
    bounce = rules.by_name("deliverability_bounce_rate_high")
    assert isinstance(complaint, ThresholdRule) and isinstance(bounce, ThresholdRule)
    assert (complaint.kpi, complaint.threshold, bounce.kpi, bounce.threshold) == (
        "complaint_rate", deliverability.COMPLAINT_RATE_THRESHOLD,
        "bounce_rate", deliverability.BOUNCE_RATE_THRESHOLD)
    assert complaint.matches("complaint_rate", "week", "sending_domain", "mail.pulse-demo.io")
    # The sample's bad week of mail.pulse-demo.io (see the module docstring) fires both …
    fired = evaluate(complaint, snapshot("complaint_rate", 0.001166667))
    assert fired is not None and fired.breaching
    fired = evaluate(bounce, snapshot("bounce_rate", 0.030555556))
    assert fired is not None and fired.breaching
    # … news.pulse-demo.io's week and a week at exactly the threshold do not; n/a is no alert.
    calm = evaluate(complaint, snapshot("complaint_rate", 0.000388889, "news.pulse-demo.io"))
    assert calm is not None and not calm.breaching
    at_limit = evaluate(bounce, snapshot("bounce_rate", 0.02))
    assert at_limit is not None and not at_limit.breaching
    assert evaluate(bounce, snapshot("bounce_rate", None)) is None


# ------------------------------------------------------------------ both backends
def component(store: Store) -> KpiComponent:
    kpi = build(store, SilentBus(make_broker(None), SERVICE),
                KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    kpi.clock = lambda: dt.datetime(Y, 12, 15, 12, tzinfo=dt.UTC)
    kpi.mrr_cap = dt.date(Y, 12, 31)
    return kpi


EXPECTED: dict[tuple[str, str, str, str], float | None] = {
    ("emails_sent", f"{Y}-11-03", "all", ""): 22000.0,
    ("emails_delivered", f"{Y}-11-03", "all", ""): 21416.0,
    ("delivery_rate", f"{Y}-11-03", "all", ""): 0.973454545,
    ("bounce_rate", f"{Y}-11-03", "all", ""): 0.026545455,
    ("hard_bounce_rate", f"{Y}-11-03", "all", ""): 0.019181818,
    ("complaint_rate", f"{Y}-11-03", "all", ""): 0.001,
    ("unsubscribe_rate", f"{Y}-11-03", "all", ""): 0.002636364,
    ("open_rate", f"{Y}-11-03", "all", ""): 0.379529324,
    ("click_rate", f"{Y}-11-03", "all", ""): 0.077605529,
    ("emails_sent", f"{Y}-11-04", "all", ""): 0.0,
    ("delivery_rate", f"{Y}-11-04", "all", ""): None,
    ("complaint_rate", f"{Y}-11-04", "all", ""): None,
    ("open_rate", f"{Y}-11-04", "all", ""): None,
    ("bounce_rate", f"{Y}-W44", "all", ""): 0.020666667,
    ("complaint_rate", f"{Y}-W44", "all", ""): 0.000777778,
    ("emails_sent", f"{Y}-11", "all", ""): 56800.0,
    ("emails_delivered", f"{Y}-11", "all", ""): 55356.0,
    ("delivery_rate", f"{Y}-11", "all", ""): 0.974577465,
    ("bounce_rate", f"{Y}-11", "all", ""): 0.025422535,
    ("complaint_rate", f"{Y}-11", "all", ""): 0.001197183,
    ("emails_sent", f"{Y}-Q4", "all", ""): 56800.0,
    ("bounce_rate", f"{Y}-W44", "sending_domain", "mail.pulse-demo.io"): 0.030555556,
    ("complaint_rate", f"{Y}-W44", "sending_domain", "mail.pulse-demo.io"): 0.001166667,
    ("bounce_rate", f"{Y}-W44", "sending_domain", "news.pulse-demo.io"): 0.010777778,
    ("complaint_rate", f"{Y}-W44", "sending_domain", "news.pulse-demo.io"): 0.000388889,
    ("open_rate", f"{Y}-11", "campaign", "a1b2c3d4e5"): 0.4,
    ("click_rate", f"{Y}-11", "campaign", "a1b2c3d4e5"): 0.1,
    ("complaint_rate", f"{Y}-W48", "campaign", "f6e5d4c3b2"): 0.002,
}


def stored(store: Store) -> dict[tuple[str, str, str, str], float | None]:
    rows = KpiStorage(store).kpi_values(start=dt.date(Y, 1, 1), end=dt.date(Y + 1, 1, 1),
                                        kpis=list(KPIS))
    return {(r["kpi"], r["period"], r["dimension"], r["dimension_value"]): r["value"]
            for r in rows}


class TestDeliverabilityKpisOnBothBackends:
    """ESP exports → the deliverability consumer's processor and sink → its follow-up
    recompute (totals) and the breakdown pass, on embedded chDB and the ClickHouse server."""

    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    async def test_rates_per_period_domain_and_campaign(self, store: Store) -> None:
        events = sample_events()
        kpi = component(store)
        for table_rows in deliverability_processor(events + events[:3]):  # a redelivery
            store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
        await kpi.after_deliverability(events)
        await kpi.refresh_breakdowns()
        got = stored(store)
        for key, value in EXPECTED.items():
            assert key in got and got[key] == value, (key, got.get(key))
        # ESP campaigns are not ad campaigns: no spend rows appear for them.
        spend = KpiStorage(store).kpi_values(start=dt.date(Y, 1, 1), end=dt.date(Y + 1, 1, 1),
                                             dimension="campaign", kpis=["spend"])
        assert spend == []
        rows = KpiStorage(store).deliverability_rows(dt.date(Y, 11, 3), dt.date(Y, 11, 4))
        assert sum(r.sent for r in rows) == 22000  # the redelivered rows did not add up
        # The monthly report's section reads these values back and names both bad weeks.
        month = Period(Grain.MONTH, dt.date(Y, 11, 1))
        inputs = ReportingStorage(store).deliverability_inputs(month)
        section = deliverability_section(inputs, month, dt.datetime(Y, 12, 15, tzinfo=dt.UTC))
        assert section is not None and section.unavailable is None
        breaches = [s for s in section.statements if s.startswith("Breach:")]
        assert breaches == [
            "Breach: mail.pulse-demo.io had a bounce rate of 3.06% in 2013-W44, above the "
            "2.0% threshold (18,000 e-mails sent that week).",
            "Breach: mail.pulse-demo.io had a spam complaint rate of 0.117% in 2013-W44, above "
            "the 0.1% threshold (18,000 e-mails sent that week).",
            "Breach: mail.pulse-demo.io had a bounce rate of 3.50% in 2013-W48, above the "
            "2.0% threshold (20,000 e-mails sent that week).",
            "Breach: mail.pulse-demo.io had a spam complaint rate of 0.200% in 2013-W48, above "
            "the 0.1% threshold (20,000 e-mails sent that week).",
        ]
        (table,) = section.tables
        assert [r[:3] for r in table.rows] == [["mail.pulse-demo.io", 38000.0, 36750.0],
                                               ["news.pulse-demo.io", 18800.0, 18606.0],
                                               ["all domains", 56800.0, 55356.0]]
        bounce_chart = section.charts[0]
        assert bounce_chart.threshold == 0.02 and bounce_chart.labels[2] == f"{Y}-11-03"
        assert bounce_chart.series[0].values[2] == 0.026545455
        assert bounce_chart.series[0].values[3] is None  # 11-04: nothing sent, no point


# ------------------------------------------------------------------ CLI
@pytest.fixture
def cli_env(embedded_data_dir: Path, embedded_store: Store,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """The CLI opens the session's embedded data dir (one chDB dir per process)."""
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    common_settings.cache_clear()
    for table_rows in deliverability_processor(sample_events()):
        embedded_store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
    yield embedded_store
    common_settings.cache_clear()


def test_cli_deliverability_by_domain_csv_and_json(cli_env: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(kpi_cli, ["deliverability", "--from", f"{Y}-W44", "--to", f"{Y}-W44",
                                  "--by", "sending_domain", "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == [
        "sending_domain,sent,delivered,delivery_rate,bounce_rate,hard_bounce_rate,"
        "complaint_rate,unsubscribe_rate,open_rate,click_rate",
        "mail.pulse-demo.io,18000,17450,0.9694,0.0306,0.0222,0.0012,0.0028,0.3862,0.0579",
        "news.pulse-demo.io,18000,17806,0.9892,0.0108,0.0071,0.0004,0.0020,0.3666,0.0799",
    ]
    target = tmp_path / "d.json"
    out = runner.invoke(kpi_cli, ["deliverability", "--from", f"{Y}-11-04", "--to",
                                  f"{Y}-11-04", "--format", "json", "--output",
                                  str(target)])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(target.read_text())
    assert row["all"] == "all" and row["sent"] == 0 and row["bounce_rate"] is None
    out = runner.invoke(kpi_cli, ["deliverability", "--from", f"{Y}-11", "--by", "campaign",
                                  "--format", "json"])
    assert out.exit_code == 0, out.output
    by_campaign = {r["campaign"]: r for r in json.loads(out.stdout)}
    assert set(by_campaign) == {"a1b2c3d4e5", "f6e5d4c3b2", "9a8b7c6d5e"}
    assert float(by_campaign["a1b2c3d4e5"]["open_rate"]) == 0.4
