"""Unit tests of the pure KPI domain on hand-worked data (edge cases included)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pulse_kpi.domain.compute import KpiValue, Params, compute, data_range, div, elapsed_fraction
from pulse_kpi.domain.facts import (
    AccountStages,
    BudgetRow,
    CreditRow,
    Facts,
    Scope,
    SpendRow,
    StageCount,
)
from pulse_kpi.domain.mrr import MovementKind, MrrEvent, daily, movements, mrr_report
from pulse_kpi.domain.snapshots import Throttle, changed, live, to_snapshot
from pulse_shared import kpi_catalog
from pulse_shared.attribution_models import DEFAULT_MODEL, MODEL_NAMES, label
from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import BY_NAME, CATALOG, MODEL_KPIS
from pulse_shared.periods import parse_period, period_complete, period_of, periods_between

D = dt.date
K = MovementKind
DM = DEFAULT_MODEL  # model of the un-suffixed attribution KPIs


def ts(y: int, m: int, d: int, h: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=dt.UTC)


def index(values: list[KpiValue]) -> dict[tuple[str, str, str, str], float | None]:
    return {(v.kpi, v.period, v.dimension, v.dimension_value): v.value for v in values}


# ----------------------------------------------------------------------------- periods


@pytest.mark.parametrize(
    ("day", "grain", "label", "start"),
    [
        (D(2026, 11, 25), Grain.DAY, "2026-11-25", D(2026, 11, 25)),
        (D(2026, 11, 25), Grain.WEEK, "2026-W48", D(2026, 11, 23)),
        (D(2027, 1, 1), Grain.WEEK, "2026-W53", D(2026, 12, 28)),  # ISO year ≠ calendar year
        (D(2026, 11, 25), Grain.MONTH, "2026-11", D(2026, 11, 1)),
        (D(2026, 11, 25), Grain.QUARTER, "2026-Q4", D(2026, 10, 1)),
        (D(2026, 3, 31), Grain.QUARTER, "2026-Q1", D(2026, 1, 1)),
    ],
)
def test_period_labels(day: D, grain: Grain, label: str, start: D) -> None:
    period = period_of(day, grain)
    assert (period.label, period.start) == (label, start)
    assert period.contains(day) and not period.contains(period.end)


def test_periods_between_and_parse() -> None:
    months = periods_between(D(2026, 1, 15), D(2026, 4, 1), Grain.MONTH)
    assert [p.label for p in months] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert parse_period("2026-10", Grain.MONTH).end == D(2026, 11, 1)
    assert parse_period("2026-02", Grain.QUARTER).label == "2026-Q1"
    assert parse_period("2026-W48").start == D(2026, 11, 23)
    assert parse_period("2026-Q4").end == D(2027, 1, 1)
    with pytest.raises(ValueError):
        parse_period("2026/10")


@pytest.mark.parametrize(("grain", "start", "last_day"), [
    (Grain.DAY, D(2026, 12, 3), D(2026, 12, 3)),
    (Grain.WEEK, D(2026, 11, 30), D(2026, 12, 6)),
    (Grain.MONTH, D(2026, 11, 1), D(2026, 11, 30)),
    (Grain.MONTH, D(2028, 2, 1), D(2028, 2, 29)),
    (Grain.QUARTER, D(2026, 10, 1), D(2026, 12, 31)),
])
def test_a_period_is_complete_from_the_day_after_its_last_day(
    grain: Grain, start: dt.date, last_day: dt.date
) -> None:
    assert not period_complete(grain, start, start)
    assert not period_complete(grain, start, last_day)
    assert period_complete(grain, start, last_day + dt.timedelta(days=1))
    assert period_complete(str(grain), start, last_day + dt.timedelta(days=400))
    assert not period_complete(grain, start, start - dt.timedelta(days=30))  # planned ahead


def test_a_snapshot_is_complete_when_its_period_ended_before_computed_at() -> None:
    november = KpiValue("spend", Grain.MONTH, "2026-11", D(2026, 11, 1), "all", "", 9.0, "USD")
    december = KpiValue("spend", Grain.MONTH, "2026-12", D(2026, 12, 1), "all", "", 1.0, "USD")
    on_3_december = ts(2026, 12, 3)
    assert to_snapshot(november, on_3_december).complete is True
    assert to_snapshot(december, on_3_december).complete is False
    # Late on 30 November in New York is already 1 December in UTC: November is complete.
    new_york = dt.timezone(dt.timedelta(hours=-5))
    assert to_snapshot(november, dt.datetime(2026, 11, 30, 21, tzinfo=new_york)).complete
    assert not to_snapshot(november, dt.datetime(2026, 11, 30, 18, tzinfo=new_york)).complete


# ----------------------------------------------------------------------------- MRR

SUBS = [
    # A: new in Jan, upgrade and downgrade in the same month (Feb).
    MrrEvent("a1", "A", ts(2030, 1, 5), Decimal(100)),
    MrrEvent("a2", "A", ts(2030, 2, 3), Decimal(150)),
    MrrEvent("a3", "A", ts(2030, 2, 20), Decimal(120)),
    # B: new in Jan, churns in Feb, reactivates in March.
    MrrEvent("b1", "B", ts(2030, 1, 10), Decimal(200)),
    MrrEvent("b2", "B", ts(2030, 2, 15), Decimal(0)),
    MrrEvent("b3", "B", ts(2030, 3, 10), Decimal(80)),
    # C: a free trial first (no movement), then new in Feb; a no-change renewal.
    MrrEvent("c0", "C", ts(2030, 1, 20), Decimal(0)),
    MrrEvent("c1", "C", ts(2030, 2, 1), Decimal(50)),
    MrrEvent("c2", "C", ts(2030, 3, 1), Decimal(50)),
]


def test_movements_follow_chartmogul_event_by_event() -> None:
    moves = {m.event_id: m for m in movements(reversed(SUBS))}  # input order is irrelevant
    assert {e: (m.kind, m.delta) for e, m in moves.items()} == {
        "a1": (K.NEW, Decimal(100)),
        "a2": (K.EXPANSION, Decimal(50)),
        "a3": (K.CONTRACTION, Decimal(-30)),
        "b1": (K.NEW, Decimal(200)),
        "b2": (K.CHURN, Decimal(-200)),
        "b3": (K.REACTIVATION, Decimal(80)),
        "c0": (K.NONE, Decimal(0)),
        "c1": (K.NEW, Decimal(50)),
        "c2": (K.NONE, Decimal(0)),
    }
    assert moves["b2"].paying_delta == -1 and moves["b3"].paying_delta == 1
    assert moves["a2"].paying_delta == 0


def test_mrr_report_by_month() -> None:
    periods = [(p.label, p.start, p.end)
               for p in periods_between(D(2030, 1, 1), D(2030, 4, 1), Grain.MONTH)]
    rows = {r.period: r for r in mrr_report(movements(SUBS), periods)}
    jan, feb, mar, apr = rows["2030-01"], rows["2030-02"], rows["2030-03"], rows["2030-04"]
    assert (jan.new, jan.net_new, jan.ending_mrr) == (300, 300, 300)
    assert (feb.new, feb.expansion, feb.contraction, feb.churn, feb.reactivation) == (
        50, 50, -30, -200, 0)
    assert (feb.net_new, feb.ending_mrr) == (-130, 170)
    assert (mar.reactivation, mar.net_new, mar.ending_mrr) == (80, 80, 250)
    assert (apr.net_new, apr.ending_mrr) == (0, 250)


def mrr_facts(spend: dict[D, Decimal] | None = None) -> Facts:
    spend_rows = [SpendRow(day, "paid_search", "", amount)
                  for day, amount in (spend or {}).items()]
    return Facts(spend=spend_rows, mrr_days=daily(movements(SUBS)))


def test_mrr_kpis_by_month() -> None:
    spend = {D(2030, 1, 2): Decimal(1000), D(2030, 2, 2): Decimal(500),
             D(2030, 3, 2): Decimal(300)}
    scope = Scope(flow_days=frozenset(spend), mrr_from=D(2030, 1, 1), mrr_to=D(2030, 3, 31))
    v = index(compute(mrr_facts(spend), scope, D(2030, 4, 15)))

    def m(kpi: str, month: str) -> float | None:
        return v[(kpi, month, "all", "")]

    # January: start MRR 0 → churn rates undefined (null), CAC = 1000 / 2 new customers.
    assert m("mrr", "2030-01") == 300 and m("arr", "2030-01") == 3600
    assert m("gross_mrr_churn_rate", "2030-01") is None
    assert m("nrr", "2030-01") is None
    assert m("new_customers", "2030-01") == 2
    assert m("cac", "2030-01") == 500
    # February: upgrade + downgrade in the same month, a churn and a new account.
    assert m("mrr_new", "2030-02") == 50
    assert m("mrr_expansion", "2030-02") == 50
    assert m("mrr_contraction", "2030-02") == -30
    assert m("mrr_churn", "2030-02") == -200
    assert m("mrr_net_new", "2030-02") == -130
    assert m("mrr", "2030-02") == 170
    assert m("gross_mrr_churn_rate", "2030-02") == pytest.approx(230 / 300)
    assert m("net_mrr_churn_rate", "2030-02") == pytest.approx(180 / 300)
    assert m("nrr", "2030-02") == pytest.approx(0.4)
    assert m("logo_churn_rate", "2030-02") == 0.5
    assert m("paying_accounts", "2030-02") == 2
    assert m("arpa", "2030-02") == 85
    assert m("new_customers", "2030-02") == 1
    assert m("cac", "2030-02") == 500
    assert m("cac_payback_months", "2030-02") == pytest.approx(500 / (85 * 0.8))
    assert m("ltv", "2030-02") == pytest.approx(85 * 0.8 / 0.5)  # only Feb's rate defined
    assert m("ltv_cac", "2030-02") == pytest.approx(136 / 500)
    # March: the churned account reactivates; no new customers → CAC null, not an error.
    assert m("mrr_reactivation", "2030-03") == 80
    assert m("mrr_churn", "2030-03") == 0
    assert m("net_mrr_churn_rate", "2030-03") == pytest.approx(-80 / 170)
    assert m("nrr", "2030-03") == pytest.approx(250 / 170)
    assert m("paying_accounts", "2030-03") == 3
    assert m("new_customers", "2030-03") == 0  # a reactivation is not a new customer
    assert m("cac", "2030-03") is None
    assert m("cac_payback_months", "2030-03") is None
    assert m("ltv_cac", "2030-03") is None
    assert m("ltv", "2030-03") == pytest.approx((250 / 3) * 0.8 / 0.25)  # avg(0.5, 0)
    # Quarter: movements add up, churn rates use MRR at quarter start (0 → null).
    assert m("mrr_net_new", "2030-Q1") == 250
    assert m("logo_churn_rate", "2030-Q1") is None
    # Day grain: MRR is a stock, carried over days without events.
    assert v[("mrr", "2030-02-16", "all", "")] == 200  # A 150 + C 50, B churned
    assert v[("mrr", "2030-03-31", "all", "")] == 250


def test_no_customers_gives_null_not_error() -> None:
    facts = Facts(spend=[SpendRow(D(2030, 5, 1), "display", "", Decimal(10))])
    v = index(compute(facts, Scope(flow_days=frozenset({D(2030, 5, 1)}),
                                   mrr_from=D(2030, 5, 1)), D(2030, 5, 2)))
    for kpi in ("arpa", "ltv", "cac", "cac_payback_months", "ltv_cac", "gross_mrr_churn_rate",
                "nrr", "logo_churn_rate"):
        assert v[(kpi, "2030-05-01", "all", "")] is None, kpi
    assert v[("mrr", "2030-05-01", "all", "")] == 0
    assert v[("paying_accounts", "2030-05-01", "all", "")] == 0


# ----------------------------------------------------------------------------- flows


def test_flow_kpis_and_zero_spend() -> None:
    day, zero_day = D(2030, 6, 2), D(2030, 6, 3)
    facts = Facts(
        spend=[
            SpendRow(day, "paid_search", "camp1", Decimal("200"), 4000, 80),
            SpendRow(day, "paid_social", "", Decimal("100"), 0, 0),
            SpendRow(zero_day, "paid_search", "camp1", Decimal("0"), 0, 0),
        ],
        stages=[StageCount(day, "lead", 4), StageCount(day, "opportunity", 2),
                StageCount(zero_day, "lead", 1)],
        credits=[
            CreditRow(day, DM, "won", "paid_search", "camp1", 1.0, Decimal(900)),
            CreditRow(day, "linear", "won", "paid_search", "camp1", 0.5, Decimal(450)),
            CreditRow(day, "linear", "won", "paid_social", "", 0.5, Decimal(450)),
            # Last touch credits paid_social: the un-suffixed KPIs must not follow it.
            CreditRow(day, "last_touch", "won", "paid_social", "", 1.0, Decimal(600)),
            CreditRow(day, "last_touch", "lead", "paid_social", "", 2.0, Decimal(0)),
            CreditRow(day, DM, "lead", "paid_search", "camp1", 3.0, Decimal(0)),
            CreditRow(day, DM, "opportunity", "paid_search", "camp1", 1.0, Decimal(5000)),
            CreditRow(zero_day, DM, "won", "paid_search", "camp1", 1.0, Decimal(100)),
        ],
    )
    v = index(compute(facts, Scope(flow_days=frozenset({day, zero_day})), D(2030, 6, 30)))
    a, z = day.isoformat(), zero_day.isoformat()
    assert v[("spend", a, "all", "")] == 300
    assert v[("ctr", a, "all", "")] == 0.02
    assert v[("cpl", a, "all", "")] == 75
    assert v[("cost_per_opportunity", a, "all", "")] == 150
    assert v[("attributed_revenue", a, "all", "")] == 900
    assert v[("attributed_pipeline", a, "all", "")] == 5000
    assert v[("roas", a, "all", "")] == 3
    assert v[("marketing_roi", a, "all", "")] == 2
    assert v[("roas__linear", a, "all", "")] == 3
    assert v[("roas__linear", a, "channel", "paid_social")] == 4.5
    assert v[(f"roas__{DM}", a, "all", "")] == 3
    assert v[("roas", a, "channel", "paid_social")] == 0  # no default-model credit
    assert v[("roas__last_touch", a, "channel", "paid_social")] == 6
    assert v[("roas__last_touch", a, "all", "")] == 2
    assert v[("ctr", a, "channel", "paid_social")] is None  # 0 impressions
    assert v[("leads", a, "channel", "paid_search")] == 3  # attributed lead credits
    assert v[("leads", a, "channel", "paid_social")] == 0  # last-touch leads don't count
    assert v[("cpl", a, "campaign", "camp1")] == pytest.approx(200 / 3)
    # Zero spend: ROAS, ROI and CTR are null, CPL is 0 / 1 = 0.
    assert v[("spend", z, "all", "")] == 0
    assert v[("roas", z, "all", "")] is None
    assert v[("marketing_roi", z, "all", "")] is None
    assert v[("ctr", z, "all", "")] is None
    assert v[("cpl", z, "all", "")] == 0
    # Week and month roll-ups of the same facts.
    assert v[("spend", "2030-06", "all", "")] == 300
    assert v[("attributed_revenue", "2030-06", "all", "")] == 1000
    assert v[("leads", "2030-06", "all", "")] == 5
    assert v[("leads", "2030-W22", "all", "")] == 4  # Sunday 2 June
    assert v[("leads", "2030-W23", "all", "")] == 1  # Monday 3 June
    assert v[("spend", "2030-Q2", "campaign", "camp1")] == 200


def test_cac_is_spend_per_new_customer_not_per_crm_win() -> None:
    """CRM wins ≠ billing's new subscriptions: CAC follows new_customers at every dimension."""
    day = D(2030, 6, 10)
    spend = [SpendRow(day, "paid_search", "camp1", Decimal(600)),
             SpendRow(day, "paid_social", "", Decimal(300))]
    # Three accounts start paying; a fourth was already paying (an upgrade is not new).
    subs = [MrrEvent(f"s{i}", f"acc{i}", ts(2030, 6, 10), Decimal(100)) for i in range(3)]
    subs += [MrrEvent("s9", "acc9", ts(2030, 3, 2), Decimal(50)),
             MrrEvent("s10", "acc9", ts(2030, 6, 10), Decimal(90))]
    facts = Facts(
        spend=spend,
        stages=[StageCount(day, "won", 1)],  # the CRM closed one deal
        mrr_days=daily(movements(subs)),
        credits=[
            CreditRow(day, DM, "new_subscription", "paid_search", "camp1", 1.6, Decimal(0)),
            CreditRow(day, DM, "new_subscription", "paid_social", "", 1.4, Decimal(0)),
            CreditRow(day, DM, "won", "paid_search", "camp1", 1.0, Decimal(0)),
            # Another model's credits must not feed the un-suffixed CAC.
            CreditRow(day, "last_touch", "new_subscription", "paid_search", "camp1", 3.0,
                      Decimal(0)),
        ],
    )
    v = index(compute(facts, Scope(flow_days=frozenset({day}), mrr_from=day), D(2030, 7, 1)))
    members = [("all", ""), ("channel", "paid_search"), ("channel", "paid_social"),
               ("campaign", "camp1")]
    for period in ("2030-06-10", "2030-W24", "2030-06", "2030-Q2"):
        for dim, member in members:
            key = (period, dim, member)
            new_customers, cac = v[("new_customers", *key)], v[("cac", *key)]
            assert new_customers and cac is not None, key
            assert cac * new_customers == pytest.approx(v[("spend", *key)]), key
        assert v[("new_customers", period, "all", "")] == 3  # billing, not the 1 CRM win
        assert v[("wins", period, "all", "")] == 1
        assert v[("cac", period, "all", "")] == pytest.approx(900 / 3)
        assert v[("new_customers", period, "channel", "paid_social")] == pytest.approx(1.4)
        assert v[("wins", period, "channel", "paid_search")] == 1
        assert v[("new_customers", period, "channel", "paid_search")] == pytest.approx(1.6)
    # Channel credits of the default model add up to the billing total.
    month = [v[("new_customers", "2030-06", "channel", c)] for c in ("paid_search", "paid_social")]
    assert sum(x or 0 for x in month) == pytest.approx(3)


def test_cac_without_recorded_spend_is_unknown_not_zero() -> None:
    """An organic channel's customers are not free: with no spend, CAC is None (n/a)."""
    day = D(2030, 6, 10)
    facts = Facts(
        spend=[SpendRow(day, "paid_search", "camp1", Decimal(600))],
        credits=[
            CreditRow(day, DM, "new_subscription", "paid_search", "camp1", 1.0, Decimal(0)),
            CreditRow(day, DM, "new_subscription", "email", "news", 2.0, Decimal(0)),
        ],
    )
    v = index(compute(facts, Scope(flow_days=frozenset({day})), D(2030, 7, 1)))
    assert v[("new_customers", "2030-06", "channel", "email")] == pytest.approx(2)
    assert v[("cac", "2030-06", "channel", "email")] is None
    assert v[("cac", "2030-06", "channel", "paid_search")] == pytest.approx(600)


def test_division_by_zero_is_null() -> None:
    assert div(1, 0) is None and div(None, 3) is None and div(1, None) is None
    assert div(Decimal(1), Decimal(4)) == 0.25 and div(1.0, 4) == 0.25


# ----------------------------------------------------------------------------- funnel


def test_funnel_conversion_and_velocity() -> None:
    facts = Facts(funnel=[
        AccountStages("X", {"lead": ts(2030, 1, 1, 10), "mql": ts(2030, 1, 3, 10)}),
        AccountStages("Y", {"lead": ts(2030, 1, 2)}),
        AccountStages("Z", {"lead": ts(2029, 12, 30, 10), "mql": ts(2030, 1, 4, 10)}),
    ])
    days = frozenset({D(2030, 1, 1), D(2030, 1, 3), D(2029, 12, 30)})
    v = index(compute(facts, Scope(funnel_days=days), D(2030, 2, 1)))
    assert v[("conv_lead_to_mql", "2030-01", "all", "")] == 0.5
    assert v[("velocity_lead_to_mql_days", "2030-01", "all", "")] == 3.5
    assert v[("conv_lead_to_mql", "2029-12", "all", "")] == 1.0
    assert v[("velocity_lead_to_mql_days", "2029-12", "all", "")] is None
    assert v[("conv_mql_to_sql", "2030-01", "all", "")] == 0.0
    assert v[("conv_sql_to_opportunity", "2030-01", "all", "")] is None  # nobody entered
    assert v[("velocity_lead_to_mql_days", "2030-01-03", "all", "")] == 2.0


# ----------------------------------------------------------------------------- budget


def test_budget_pacing_and_projection() -> None:
    june = D(2030, 6, 1)  # 30 days
    facts = Facts(
        budgets=[
            BudgetRow(june, "paid_search", "", Decimal(3000)),
            BudgetRow(june, "paid_social", "s1", Decimal(600)),
            BudgetRow(june, "paid_social", "s2", Decimal(400)),
        ],
        spend=[
            SpendRow(D(2030, 6, 5), "paid_search", "", Decimal(1200)),
            SpendRow(D(2030, 6, 5), "paid_social", "s1", Decimal(100)),
            SpendRow(D(2030, 6, 20), "paid_search", "", Decimal(999)),  # after as-of
            SpendRow(D(2030, 6, 6), "display", "", Decimal(50)),  # no budget at all
        ],
    )
    scope = Scope(budget_months=frozenset({june}))
    v = index(compute(facts, scope, D(2030, 6, 10)))
    assert v[("budget", "2030-06", "all", "")] == 4000
    assert v[("budget", "2030-06", "channel", "paid_social")] == 1000  # sum of campaigns
    assert v[("spend_to_date", "2030-06", "channel", "paid_search")] == 1200
    assert v[("pacing", "2030-06", "channel", "paid_search")] == pytest.approx(1.2)
    assert v[("projected_spend", "2030-06", "channel", "paid_search")] == 3600
    assert v[("pacing", "2030-06", "campaign", "s1")] == pytest.approx(100 / (600 / 3))
    assert v[("pacing", "2030-06", "all", "")] == pytest.approx(1350 / (4000 / 3))
    assert v[("pacing", "2030-06", "channel", "display")] is None  # budget 0 → null
    assert v[("budget", "2030-Q2", "all", "")] == 4000
    # Before the month starts nothing has elapsed: projection and pacing are null.
    early = index(compute(facts, scope, D(2030, 5, 20)))
    assert early[("projected_spend", "2030-06", "all", "")] is None
    assert early[("pacing", "2030-06", "all", "")] is None
    assert elapsed_fraction(period_of(june, Grain.MONTH), D(2030, 7, 3)) == 1


# ----------------------------------------------------------------------------- policy


def test_changed_and_throttle() -> None:
    a = KpiValue("spend", Grain.DAY, "2030-01-01", D(2030, 1, 1), "all", "", 1.0, "USD")
    b = KpiValue("roas", Grain.DAY, "2030-01-01", D(2030, 1, 1), "all", "", None, "ratio")
    assert changed([a, b], {a.key: 1.0, b.key: None}) == []
    assert changed([a, b], {a.key: 2.0}) == [a, b]
    throttle = Throttle(min_interval=1.0)
    assert throttle.offer([a], now=10.0) == [a]
    a2 = KpiValue(*[getattr(a, f) for f in ("kpi", "grain", "period", "period_start",
                                              "dimension", "dimension_value")], 2.0, "USD")
    assert throttle.offer([a2], now=10.4) == []  # rate-limited: waits
    assert throttle.next_due() == 11.0
    assert throttle.due(now=10.9) == []
    assert throttle.due(now=11.0) == [a2]
    assert throttle.pending == {}


def test_catalog_covers_every_computed_kpi() -> None:
    day = D(2030, 6, 2)
    facts = Facts(spend=[SpendRow(day, "email", "c", Decimal(1))],
                  credits=[CreditRow(day, "markov", "won", "email", "c", 1.0, Decimal(1))])
    scope = Scope(flow_days=frozenset({day}), mrr_from=day, funnel_days=frozenset({day}),
                  budget_months=frozenset({D(2030, 6, 1)}))
    names = {v.kpi for v in compute(facts, scope, day)}
    assert names <= set(BY_NAME)
    documented = {
        "spend", "impressions", "clicks", "ctr", "leads", "mqls", "sqls", "opportunities",
        "wins", "new_customers", "cpl", "cost_per_opportunity", "cac", "cac_payback_months",
        "attributed_pipeline", "attributed_revenue", "roas", "marketing_roi", "mrr", "arr",
        "mrr_new", "mrr_expansion", "mrr_contraction", "mrr_churn", "mrr_reactivation",
        "mrr_net_new", "gross_mrr_churn_rate", "net_mrr_churn_rate", "nrr", "logo_churn_rate",
        "paying_accounts", "arpa", "ltv", "ltv_cac", "budget", "spend_to_date", "pacing",
        "projected_spend", "conv_lead_to_mql", "velocity_lead_to_mql_days", "roas__markov",
    }
    assert documented <= names
    assert all(k.definition and k.unit and k.direction for k in CATALOG)


def test_every_catalog_entry_has_a_label_and_a_source() -> None:
    missing = [k.name for k in CATALOG if not k.label.strip() or not k.source.strip()]
    assert missing == []
    assert len({k.label for k in CATALOG}) == len(CATALOG)  # people can tell them apart
    for kpi in MODEL_KPIS:
        for model in MODEL_NAMES:
            entry = BY_NAME[f"{kpi}__{model}"]
            assert entry.label == f"{BY_NAME[kpi].label} ({label(model)})"
            assert label(model) in entry.source
        assert label(DM) in BY_NAME[kpi].source  # un-suffixed: the default model
    assert BY_NAME["roas__last_touch"].label == "ROAS (Last touch)"
    # Wins are the CRM's deals; CAC divides by billing's new customers.
    wins, new, cac = BY_NAME["wins"], BY_NAME["new_customers"], BY_NAME["cac"]
    assert wins.label == "Deals won (CRM)" and wins.source.startswith("CRM")
    assert "not the cac denominator" in wins.definition.lower()
    assert new.source.startswith("Billing") and new.source in cac.source
    assert cac.dimensions == ("all", "channel", "campaign")
    assert new.dimensions == (*cac.dimensions, *kpi_catalog.ACCOUNT_DIMS)  # billing's, too


def test_data_range_looks_back_for_ltv() -> None:
    rng = data_range(Scope(flow_days=frozenset({D(2030, 6, 2)})), Params())
    assert rng == (D(2029, 10, 1), D(2030, 7, 1))  # quarter Q2 minus 6 months … Q2 end


def test_live_skips_backfilled_periods() -> None:
    def v(grain: Grain, start: D) -> KpiValue:
        return KpiValue("spend", grain, "x", start, "all", "", 1.0, "USD")

    old_day, old_month = v(Grain.DAY, D(2030, 1, 5)), v(Grain.MONTH, D(2030, 1, 1))
    quarter, today = v(Grain.QUARTER, D(2030, 1, 1)), v(Grain.DAY, D(2030, 3, 20))
    values = [old_day, old_month, quarter, today]
    assert live(values, D(2030, 3, 20), horizon_days=62) == [old_month, quarter, today]
    assert live(values, D(2030, 4, 20), horizon_days=62) == [quarter, today]
    assert live(values, D(2030, 3, 20), horizon_days=0) == values


def test_throttle_defers_and_paces_breakdowns() -> None:
    def v(dim: str, value: str) -> KpiValue:
        return KpiValue("spend", Grain.DAY, "2030-01-01", D(2030, 1, 1), dim, value, 1.0, "USD")

    throttle = Throttle(min_interval=0.25, dimension_min_interval=2.0)
    campaigns = [v("campaign", f"c{i}") for i in range(5)]
    assert throttle.offer(campaigns, now=1.0, defer=True) == []  # all wait for the flusher
    total = v("all", "")
    assert throttle.offer([total], now=1.0) == [total]
    first = throttle.due(now=1.0, limit=2)
    assert len(first) == 2 and len(throttle.pending) == 3  # paced: 2 per tick
    assert len(throttle.due(now=1.05, limit=10)) == 3
    assert throttle.offer([v("campaign", "c0")], now=2.0) == []  # 2 s per breakdown key
    assert throttle.due(now=3.0) == [v("campaign", "c0")]


def test_throttle_due_keeps_the_interval_of_keys_sent_meanwhile() -> None:
    """A key waiting for the flusher and then sent directly waits a whole interval again."""
    def v(value: float, dim: str = "all", member: str = "") -> KpiValue:
        return KpiValue("spend", Grain.DAY, "2030-01-01", D(2030, 1, 1), dim, member, value, "USD")

    throttle = Throttle(min_interval=1.0, dimension_min_interval=2.0)
    assert throttle.offer([v(1.0)], now=0.0, defer=True) == []  # queued, due at once
    assert throttle.offer([v(2.0)], now=0.5) == [v(2.0)]  # sent directly meanwhile
    assert throttle.offer([v(3.0)], now=0.6) == []  # waits until 1.5
    assert throttle.due(now=1.0) == []  # the old queue entry does not send it early
    assert throttle.due(now=1.5) == [v(3.0)]
    assert throttle.pending == {}
    # Totals first when paced, then breakdowns in the order they became due.
    many = [v(float(i), "campaign", f"c{i}") for i in range(3)]
    throttle.offer(many, now=2.0, defer=True)
    throttle.offer([v(9.0)], now=2.0, defer=True)
    assert throttle.due(now=2.5, limit=2) == [v(9.0), many[0]]
    assert throttle.due(now=2.5) == many[1:]


# ----------------------------------------------------------------------- derived KPIs


@pytest.fixture
def clicks_per_lead(monkeypatch: pytest.MonkeyPatch) -> str:
    """A toy derived KPI, registered (catalog + compute) for one test only."""
    monkeypatch.setattr(kpi_catalog, "CATALOG", kpi_catalog.CATALOG)
    monkeypatch.setattr(kpi_catalog, "BY_NAME", dict(kpi_catalog.BY_NAME))
    monkeypatch.setattr(kpi_catalog, "DERIVED", dict(kpi_catalog.DERIVED))

    @kpi_catalog.derived_kpi(
        kpi_catalog.KpiDef("clicks_per_lead", "Ad clicks / leads.", kpi_catalog.Unit.RATIO,
                           kpi_catalog.Direction.NEUTRAL, dimensions=("all", "channel"),
                           label="Clicks per lead", source="Ad platforms and CRM"),
        ("clicks", "leads"),
    )
    def _formula(values: kpi_catalog.Values) -> float | None:
        return kpi_catalog.ratio(values["clicks"], values["leads"])

    return "clicks_per_lead"


def test_a_registered_derived_kpi_is_computed_and_listed(clicks_per_lead: str) -> None:
    day, other = D(2030, 6, 10), D(2030, 6, 11)
    facts = Facts(
        spend=[SpendRow(day, "paid_search", "camp1", Decimal("200"), 1000, 30),
               SpendRow(day, "paid_social", "", Decimal("100"), 500, 10),
               SpendRow(other, "paid_search", "camp1", Decimal("50"), 100, 6)],
        stages=[StageCount(day, "lead", 4), StageCount(other, "lead", 0)],
        credits=[CreditRow(day, DM, "lead", "paid_search", "camp1", 3.0, Decimal(0))],
    )
    values = compute(facts, Scope(flow_days=frozenset({day, other})), D(2030, 6, 30))
    v = index(values)
    assert v[(clicks_per_lead, day.isoformat(), "all", "")] == 10  # 40 clicks / 4 leads
    assert v[(clicks_per_lead, "2030-06", "all", "")] == 11.5  # 46 clicks / 4 leads
    assert v[(clicks_per_lead, day.isoformat(), "channel", "paid_search")] == 10  # 30 / 3
    assert v[(clicks_per_lead, day.isoformat(), "channel", "paid_social")] is None  # 0 leads
    assert v[(clicks_per_lead, other.isoformat(), "all", "")] is None
    # Not defined for campaigns, so not computed there; the base KPIs are unchanged.
    assert (clicks_per_lead, day.isoformat(), "campaign", "camp1") not in v
    assert v[("ctr", day.isoformat(), "all", "")] == pytest.approx(40 / 1500)
    assert {x.unit for x in values if x.kpi == clicks_per_lead} == {"ratio"}
    assert kpi_catalog.BY_NAME[clicks_per_lead].label == "Clicks per lead"
    assert kpi_catalog.CATALOG[-1].name == clicks_per_lead


def test_the_toy_derived_kpi_is_gone_after_its_test() -> None:
    assert "clicks_per_lead" not in kpi_catalog.BY_NAME
    assert "clicks_per_lead" not in {k.name for k in kpi_catalog.CATALOG}
    assert "clicks_per_lead" not in kpi_catalog.DERIVED


def test_ctr_and_ltv_cac_are_derived_kpis_of_the_catalog() -> None:
    assert {"ctr", "ltv_cac"} <= set(kpi_catalog.DERIVED)
    assert all(kpi_catalog.BY_NAME[name] == d.kpi for name, d in kpi_catalog.DERIVED.items())
    with pytest.raises(ValueError, match="already registered"):
        kpi_catalog.derived_kpi(BY_NAME["ctr"], ("clicks",))(lambda values: 0.0)
