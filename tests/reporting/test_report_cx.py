"""The "Customer experience" report section (issue 17): NPS and CSAT trend, ticket volume
and first response time, NPS of churned vs retained accounts — read by ReportingStorage on
both backends and built purely (domain/cx.py), rendered by the generic insight renderers.

Hand-checkable ledger in 2003 (a year no other test writes; earlier test accounts churned
before this report's 12-month window):

* Subscriptions: P, Q, R pay 100 from 2002-12-01; R cancels 2003-02-20.
* NPS: P 2003-02-03 → 10 and 2003-03-05 → 9; Q 2003-03-06 → 7; R 2003-02-10 → 4 (before
  churning). CSAT: P 2003-03-07 → 5, Q 2003-03-08 → 2.
* Tickets: R 2003-02-12 09:00, response 12:00 (3 h), closed 02-13; P 2003-03-10 09:00,
  response 10:00 (1 h), solved 03-11; Q 2003-03-20 09:00, response 14:00 (5 h), pending.

Report 2003-03: NPS 50 from 2 answers (9, 7), February 0 from 2 (10, 4) → +50 points;
CSAT 50.0% of 2; tickets 2 created, 1 resolved, median first response (1 + 5) / 2 = 3 h.
Churned vs retained (window 2002-04 … 2003-03): R churned with last answer 4 → −100 (1
account); P (9) and Q (7) retained → +50 (2 accounts).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pulse_kpi.app import SilentBus
from pulse_kpi.main import build as build_kpi
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import (
    SUBSCRIPTION_COLUMNS,
    feedback_processor,
    subscription_rows,
    ticket_processor,
)
from pulse_reporting.domain.cx import CxInputs, cx_section
from pulse_reporting.domain.periods import parse_period, trend_months
from pulse_reporting.domain.scoping import scoped_report
from pulse_reporting.insights import INSIGHTS
from pulse_reporting.render.markdown import render_markdown
from pulse_reporting.storage import ReportingStorage
from pulse_shared.bus import make_broker
from pulse_shared.events import FeedbackResponse, Subscription, SubscriptionEventType, SupportTicket
from pulse_shared.store import Store

Y = 2003
NOW = dt.datetime(Y, 4, 5, 8, tzinfo=dt.UTC)


def at(m: int, d: int, h: int = 10, year: int = Y) -> dt.datetime:
    return dt.datetime(year, m, d, h, tzinfo=dt.UTC)


def acct(name: str) -> str:
    return f"rcx{Y}-{name}"


async def load(store: Store) -> None:
    kpi = build_kpi(store, SilentBus(make_broker(None), SERVICE),
                    KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    kpi.clock = lambda: NOW
    kpi.mrr_cap = dt.date(Y, 12, 31)
    subs = [
        Subscription(event_id=f"rcx{Y}-s-{a}", occurred_at=at(12, 1, year=Y - 1),
                     account_id=acct(a), event_type=SubscriptionEventType.SUBSCRIPTION_STARTED,
                     mrr=Decimal(100), plan="pro")
        for a in "PQR"
    ] + [Subscription(event_id=f"rcx{Y}-s-R-end", occurred_at=at(2, 20), account_id=acct("R"),
                      event_type=SubscriptionEventType.SUBSCRIPTION_CANCELED, mrr=Decimal(0))]
    store.insert("subscriptions", subscription_rows(subs), list(SUBSCRIPTION_COLUMNS))
    await kpi.after_subscriptions(subs)
    answers = [
        FeedbackResponse(event_id=f"rcx{Y}-f-{i}", account_id=acct(a), survey=survey,
                         score=score, responded_at=when)
        for i, (a, survey, score, when) in enumerate([
            ("P", "nps", 10, at(2, 3)), ("P", "nps", 9, at(3, 5)), ("Q", "nps", 7, at(3, 6)),
            ("R", "nps", 4, at(2, 10)), ("P", "csat", 5, at(3, 7)), ("Q", "csat", 2, at(3, 8)),
        ])
    ]
    tickets = [
        SupportTicket(event_id=f"rcx{Y}-t-{a}", ticket_id=f"rcx{Y}-t-{a}", account_id=acct(a),
                      created_at=created, first_response_at=response, resolved_at=resolved,
                      status=status, channel="chat")
        for a, created, response, resolved, status in [
            ("R", at(2, 12, 9), at(2, 12, 12), at(2, 13), "closed"),
            ("P", at(3, 10, 9), at(3, 10, 10), at(3, 11), "solved"),
            ("Q", at(3, 20, 9), at(3, 20, 14), None, "pending"),
        ]
    ]
    for table_rows in feedback_processor(answers) + ticket_processor(tickets):
        store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
    await kpi.after_feedback(answers)
    await kpi.after_tickets(tickets)


def test_no_answers_or_tickets_is_unavailable_not_zero() -> None:
    period = parse_period("monthly", f"{Y}-03")
    section = cx_section(CxInputs(period, period.previous(), trend_months(period)), period, NOW)
    assert section is not None and section.unavailable and not section.tables
    assert [spec.key for spec in INSIGHTS].index("cx") == 3  # segments, usage, deliverability, cx


class TestCxSectionOnBothBackends:
    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    async def test_monthly_cx_section(self, store: Store) -> None:
        await load(store)
        period = parse_period("monthly", f"{Y}-03")
        section = cx_section(ReportingStorage(store).cx_inputs(period), period, NOW)
        assert section is not None and section.unavailable is None
        nps, csat, tickets, churn = section.statements
        assert nps == (f"NPS {Y}-03: +50 from 2 answers (1 promoters, 1 passives, 0 "
                       f"detractors); {Y}-02: +0 from 2 answers (+50 points).")
        assert csat == f"CSAT {Y}-03: 50.0% satisfied of 2 answers; {Y}-02: n/a of 0 (n/a)."
        assert tickets == (f"Support tickets {Y}-03: 2 created, 1 resolved, median first "
                           f"response 3.0 h over 2 answered tickets; {Y}-02: 1 created, 1 "
                           "resolved, median first response 3.0 h.")
        assert "−100" in churn or "-100" in churn
        assert "+50 for the accounts still paying" in churn and "150 points higher" in churn
        (chart,) = section.charts
        assert chart.kind == "line" and chart.labels[-1] == f"{Y}-03"
        assert [s.values[-2:] for s in chart.series] == [[0.0, 50.0], [None, 50.0]]
        monthly, split = section.tables
        assert monthly.rows[-1] == [f"{Y}-03", 2, 1, 3.0, 50.0, 2]
        assert monthly.rows[-2] == [f"{Y}-02", 1, 1, 3.0, 0.0, 2]
        assert split.rows == [["churned", 1, 0, 0, 1, -100.0], ["retained", 2, 1, 1, 0, 50.0]]
        # Rendered like any insight section, and cx may read it (every KPI is experience).
        from test_reporting_golden import build

        report = build("monthly", f"{Y}-03").model_copy(update={"insights": [section]})
        assert "## Customer experience" in render_markdown(report)
        assert [s.key for s in scoped_report(report, "cx").insights] == ["cx"]
