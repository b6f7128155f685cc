"""Customer experience (issue 17): NPS / CSAT answers and support tickets → KPIs nps,
nps_responses, csat, tickets_created, tickets_resolved, first_response_hours,
tickets_per_account; ``pulse kpi nps|tickets|nps-churn``.

Hand-checkable ledger in 2001 (a year no other test writes; the stores are shared; every
account cancels by October so later years see none of them paying):

* Subscriptions: A, B, C, D start paying 100 on Jan 10; C cancels Mar 5, D Mar 20; A and
  B cancel Oct 1. E never pays.
* NPS answers: A Feb 1 → 10, Mar 10 → 9; B Feb 2 → 8; C Feb 3 → 3, Mar 8 → 10 (after
  churning); D Feb 4 → 9, Mar 15 → 5; E Feb 6 → 0 (never paid).
  February: 10, 8, 3, 9, 0 → promoters 2, passives 1, detractors 2 → NPS 0 (5 answers).
  March: 9, 10, 5 → 2 promoters, 1 detractor → 33.333333333 (3 answers).
  Q1: promoters 4 (10, 9, 9, 10), passives 1, detractors 3 (3, 5, 0) of 8 → 12.5.
* CSAT answers: Feb 5, 4, 2, 3 → 2 of 4 satisfied = 0.5; Mar one 4 → 1.0.
* Tickets (latest state wins):
  T1 A created Feb 5 09:00, response 11:00 (2 h), solved Feb 6;
  T2 C created Feb 10 08:00, response 14:00 (6 h), first open, then solved Mar 2 (a later
  state), then an older "open" state arrives late (updated_at earlier: ignored);
  T3 C created Feb 20 10:00, response Feb 21 10:00 (24 h), closed Feb 25;
  T4 D created Feb 27, no response, open;
  T5 B created Mar 3 10:00, response 10:30 (0.5 h), pending.
  February: created 4, resolved 2 (T1, T3), median first response of 2, 6, 24 = 6 h,
  paying at its end 4 → 1 ticket per account. March: created 1, resolved 1 (T2), first
  response 0.5 h, paying at its end 2 (A, B) → 0.5. Week 2001-W06 (Feb 5–11): T1, T2 →
  median (2 + 6) / 2 = 4 h.
* NPS of churned vs retained as of 2001-04-01: churned C (latest before Mar 5: 3) and D
  (latest before Mar 20: 5) → 2 detractors, NPS −100; retained A (9) and B (8) → 50; E
  never paid and C's answer after churning does not count.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from pulse_ingest.domain.normalize import normalise_rows
from pulse_kpi import cli_support
from pulse_kpi.app import KpiComponent, SilentBus
from pulse_kpi.cli import app as kpi_cli
from pulse_kpi.domain.experience import ExperienceLedger, TicketRow
from pulse_kpi.main import build
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import (
    SUBSCRIPTION_COLUMNS,
    KpiStorage,
    feedback_processor,
    subscription_rows,
    ticket_processor,
)
from pulse_shared import access, kpi_catalog
from pulse_shared.bus import make_broker
from pulse_shared.events import (
    FeedbackResponse,
    Subscription,
    SubscriptionEventType,
    SupportTicket,
)
from pulse_shared.experience import MrrPoint, NpsAnswer, csat_share, nps_by_churn, nps_points
from pulse_shared.periods import parse_period
from pulse_shared.settings import common_settings
from pulse_shared.store import Store
from pulse_shared.topics import BY_INGEST_KIND

Y = 2001
ROOT = Path(__file__).resolve().parents[2]
CX_KPIS = kpi_catalog.EXPERIENCE_KPIS


def at(m: int, d: int, h: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(Y, m, d, h, minute, tzinfo=dt.UTC)


def acct(name: str) -> str:
    return f"cx{Y}-{name}"


def subscriptions() -> list[Subscription]:
    changes = [("A", at(1, 10), 100, "subscription_started"),
               ("B", at(1, 10), 100, "subscription_started"),
               ("C", at(1, 10), 100, "subscription_started"),
               ("D", at(1, 10), 100, "subscription_started"),
               ("C", at(3, 5), 0, "subscription_canceled"),
               ("D", at(3, 20), 0, "subscription_canceled"),
               ("A", at(10, 1), 0, "subscription_canceled"),
               ("B", at(10, 1), 0, "subscription_canceled")]
    return [
        Subscription(event_id=f"cx{Y}-sub-{i}", occurred_at=when, account_id=acct(a),
                     event_type=SubscriptionEventType(kind), mrr=Decimal(mrr), plan="pro")
        for i, (a, when, mrr, kind) in enumerate(changes)
    ]


def answers() -> list[FeedbackResponse]:
    nps = [("A", at(2, 1), 10), ("A", at(3, 10), 9), ("B", at(2, 2), 8), ("C", at(2, 3), 3),
           ("C", at(3, 8), 10), ("D", at(2, 4), 9), ("D", at(3, 15), 5), ("E", at(2, 6), 0)]
    csat = [("A", at(2, 7), 5), ("B", at(2, 8), 4), ("C", at(2, 9), 2), ("D", at(2, 10), 3),
            ("A", at(3, 12), 4)]
    return [
        FeedbackResponse(event_id=f"cx{Y}-{survey}-{i}", account_id=acct(a), survey=survey,
                         score=score, responded_at=when)
        for survey, rows in (("nps", nps), ("csat", csat))
        for i, (a, when, score) in enumerate(rows)
    ]


def ticket(tid: str, account: str, created: dt.datetime, status: str,
           response: dt.datetime | None = None, resolved: dt.datetime | None = None,
           updated: dt.datetime | None = None, version: int = 1) -> SupportTicket:
    return SupportTicket(event_id=f"cx{Y}-{tid}-{version}", ticket_id=f"cx{Y}-{tid}",
                         account_id=acct(account), created_at=created,
                         first_response_at=response, resolved_at=resolved, status=status,
                         channel="email", updated_at=updated)


def first_tickets() -> list[SupportTicket]:
    return [
        ticket("T1", "A", at(2, 5, 9), "solved", at(2, 5, 11), at(2, 6, 9)),
        ticket("T2", "C", at(2, 10, 8), "open", at(2, 10, 14)),
        ticket("T3", "C", at(2, 20), "closed", at(2, 21), at(2, 25)),
        ticket("T4", "D", at(2, 27), "open"),
        ticket("T5", "B", at(3, 3), "pending", at(3, 3, 10, 30)),
    ]


def later_tickets() -> list[SupportTicket]:
    """T2 solved on Mar 2, then a stale 'open' state of T2 delivered late."""
    return [
        ticket("T2", "C", at(2, 10, 8), "solved", at(2, 10, 14), at(3, 2), version=2),
        ticket("T2", "C", at(2, 10, 8), "open", at(2, 10, 14), updated=at(2, 11), version=3),
    ]


# ------------------------------------------------------------------ pure definitions
def test_nps_csat_and_their_edges() -> None:
    assert nps_points([10, 9, 8, 7, 6, 0]) == 0.0
    assert nps_points([10, 9, 8]) == pytest.approx(66.666666667)
    assert nps_points([0, 6]) == -100.0 and nps_points([9]) == 100.0
    assert nps_points([]) is None and csat_share([]) is None
    assert csat_share([5, 4, 3, 2, 1]) == 0.4


def test_churned_vs_retained_takes_each_accounts_latest_answer_before_churn() -> None:
    mrr = [MrrPoint(s.account_id, s.occurred_at, s.mrr) for s in subscriptions()]
    nps = [NpsAnswer(a.account_id, a.score, a.responded_at) for a in answers()
           if a.survey == "nps"]
    split = nps_by_churn(nps, mrr, at(4, 1, 0))
    assert {(a.account_id, a.churned, a.score) for a in split.accounts} == {
        (acct("A"), False, 9), (acct("B"), False, 8), (acct("C"), True, 3),
        (acct("D"), True, 5)}
    assert (split.churned.responses, split.churned.nps) == (2, -100.0)
    assert (split.retained.responses, split.retained.nps) == (2, 50.0)
    # As of Mar 12: D still pays, its latest answer then was Feb 4's 9.
    early = nps_by_churn(nps, mrr, at(3, 12, 0))
    assert {(a.account_id, a.churned, a.score) for a in early.accounts} == {
        (acct("A"), False, 9), (acct("B"), False, 8), (acct("C"), True, 3),
        (acct("D"), False, 9)}
    # Only the accounts churned since Mar 10 count as churned: D.
    since = nps_by_churn(nps, mrr, at(4, 1, 0), churned_since=at(3, 10, 0))
    assert since.churned.responses == 1 and since.retained.responses == 2


def test_ledger_ignores_unresolved_states_and_missing_first_responses() -> None:
    rows = [TicketRow(t.ticket_id, t.account_id, t.created_at, t.first_response_at,
                      t.resolved_at, t.status.value, t.channel.value) for t in first_tickets()]
    ledger = ExperienceLedger((), rows)
    values = ledger.period_values(parse_period(f"{Y}-02"), paying=4)
    assert values["tickets_created"] == 4.0 and values["tickets_resolved"] == 2.0
    assert values["first_response_hours"] == 6.0 and values["tickets_per_account"] == 1.0
    assert ledger.period_values(parse_period(f"{Y}-02"), paying=0)["tickets_per_account"] is None
    assert ledger.period_values(parse_period(f"{Y}-06"), paying=2)["first_response_hours"] is None


# ------------------------------------------------------------------ the event contracts
def test_score_ranges_are_validated_per_survey_naming_the_field() -> None:
    base = {"event_id": "x", "account_id": "a", "responded_at": at(2, 1)}
    FeedbackResponse(**base, survey="nps", score=0)
    FeedbackResponse(**base, survey="csat", score=5)
    for survey, score, reason in (("csat", 0, "outside the csat scale 1–5"),
                                  ("csat", 6, "outside the csat scale 1–5"),
                                  ("nps", 11, "less than or equal to 10"),
                                  ("nps", -1, "greater than or equal to 0")):
        with pytest.raises(ValidationError) as err:
            FeedbackResponse(**base, survey=survey, score=score)
        (error,) = err.value.errors()
        assert error["loc"] == ("score",) and reason in error["msg"], error
    with pytest.raises(ValidationError, match="comment"):
        FeedbackResponse(**base, survey="nps", score=9, comment="nice")  # type: ignore[call-arg]


def test_ingest_drops_survey_comments_and_checks_ticket_states() -> None:
    batch = normalise_rows("feedback", [
        {"account": "acme", "type": "NPS", "rating": "7", "date": "2026-11-20",
         "comment": "ring Jane on +1 415 555 0100"},
    ], "salt")
    (event,) = batch.events
    assert isinstance(event, FeedbackResponse) and event.score == 7
    assert "comment" in batch.ignored and "415" not in event.model_dump_json()
    bad = normalise_rows("tickets", [
        {"id": "t1", "account": "a", "created_at": "2026-11-20 10:00", "status": "solved",
         "channel": "email"},
        {"id": "t2", "account": "a", "created_at": "2026-11-20 10:00",
         "first_response_at": "2026-11-20 09:00", "status": "open", "channel": "chat"},
        {"id": "t3", "account": "a", "created_at": "2026-11-20 10:00",
         "resolved_at": "2026-11-21", "status": "open", "channel": "phone"},
        {"id": "t4", "account": "a", "created_at": "2026-11-20 10:00", "status": "open",
         "channel": "fax"},
    ], "salt")
    assert [(e.index, e.field) for e in bad.errors] == [
        (0, "status"), (1, "first_response_at"), (2, "status"), (3, "channel")]
    assert BY_INGEST_KIND["feedback"].table == "feedback_responses"
    assert BY_INGEST_KIND["tickets"].name == "cx.tickets.v1"


def test_catalog_access_and_the_committed_docs() -> None:
    for name in CX_KPIS:
        entry = kpi_catalog.BY_NAME[name]
        assert entry.family is kpi_catalog.Family.EXPERIENCE
        assert access.kpi_visible(access.Role.CX, name)
        assert access.kpi_visible(access.Role.CX, name, "segment")
        assert access.kpi_visible(access.Role.CMO, name)
        assert not access.kpi_visible(access.Role.PLATFORM, name)
    assert kpi_catalog.BY_NAME["nps"].unit is kpi_catalog.Unit.POINTS
    assert not access.kpi_visible(access.Role.CX, "spend")
    assert not access.kpi_visible(access.Role.CX, "cac")
    assert {"feedback_responses", "support_tickets"} <= access.SCOPES[access.Role.CX].tables
    listed = CliRunner().invoke(kpi_cli, ["list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert set(CX_KPIS) <= {k["name"] for k in json.loads(listed.output)}
    committed = (ROOT / "docs" / "asyncapi" / "kpi-catalog.md").read_text()
    assert all(f"`{name}`" in committed for name in CX_KPIS)


# ------------------------------------------------------------------ consumers → KPIs, both backends
def component(store: Store) -> KpiComponent:
    kpi = build(store, SilentBus(make_broker(None), SERVICE),
                KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    kpi.clock = lambda: dt.datetime(Y, 6, 15, 12, tzinfo=dt.UTC)
    kpi.mrr_cap = dt.date(Y, 12, 31)  # other tests' later subscriptions stay out of 2001
    return kpi


def write(store: Store, processed: list[Any]) -> None:
    for table_rows in processed:
        store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))


async def load(store: Store) -> KpiComponent:
    """The ledger as the consumers store it, then their follow-up recomputes."""
    kpi = component(store)
    subs = subscriptions()
    store.insert("subscriptions", subscription_rows(subs), list(SUBSCRIPTION_COLUMNS))
    await kpi.after_subscriptions(subs)
    feedback = answers()
    write(store, feedback_processor(feedback + feedback[:2]))  # a redelivery
    await kpi.after_feedback(feedback)
    write(store, ticket_processor(first_tickets()))
    await kpi.after_tickets(first_tickets())
    return kpi


def stored(store: Store) -> dict[tuple[str, str], float | None]:
    rows = KpiStorage(store).kpi_values(start=dt.date(Y, 1, 1), end=dt.date(Y + 1, 1, 1),
                                        dimension="all", kpis=list(CX_KPIS))
    return {(r["kpi"], r["period"]): r["value"] for r in rows}


EXPECTED: dict[tuple[str, str], float | None] = {
    ("nps", f"{Y}-02"): 0.0, ("nps_responses", f"{Y}-02"): 5.0, ("csat", f"{Y}-02"): 0.5,
    ("nps", f"{Y}-03"): 33.333333333, ("nps_responses", f"{Y}-03"): 3.0,
    ("csat", f"{Y}-03"): 1.0,
    ("nps", f"{Y}-Q1"): 12.5, ("nps_responses", f"{Y}-Q1"): 8.0,
    ("nps", f"{Y}-02-01"): 100.0, ("csat", f"{Y}-02-01"): None,
    ("tickets_created", f"{Y}-02"): 4.0, ("tickets_resolved", f"{Y}-02"): 2.0,
    ("first_response_hours", f"{Y}-02"): 6.0, ("tickets_per_account", f"{Y}-02"): 1.0,
    ("tickets_created", f"{Y}-W06"): 2.0, ("first_response_hours", f"{Y}-W06"): 4.0,
    ("tickets_created", f"{Y}-02-27"): 1.0, ("first_response_hours", f"{Y}-02-27"): None,
}
#: After T2 was solved on Mar 2 (and a stale open state of it arrived late).
EXPECTED_LATER: dict[tuple[str, str], float | None] = {
    ("tickets_resolved", f"{Y}-02"): 2.0, ("tickets_resolved", f"{Y}-03"): 1.0,
    ("tickets_created", f"{Y}-03"): 1.0, ("first_response_hours", f"{Y}-03"): 0.5,
    ("tickets_per_account", f"{Y}-03"): 0.5, ("tickets_resolved", f"{Y}-Q1"): 3.0,
    ("tickets_created", f"{Y}-Q1"): 5.0, ("first_response_hours", f"{Y}-Q1"): 4.0,
    ("tickets_resolved", f"{Y}-03-02"): 1.0,
}


class TestExperienceKpisOnBothBackends:
    """Consumers' processors and sinks → their follow-up recompute, on embedded chDB and
    the real ClickHouse server."""

    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    async def test_nps_csat_tickets_and_first_response(self, store: Store) -> None:
        kpi = await load(store)
        got = stored(store)
        for key, value in EXPECTED.items():
            assert got.get(key) == value, (key, got.get(key))
        write(store, ticket_processor(later_tickets()[:1]))
        await kpi.after_tickets(later_tickets()[:1])
        write(store, ticket_processor(later_tickets()[1:]))  # stale: updated_at earlier
        await kpi.after_tickets(later_tickets()[1:])
        got = stored(store)
        for key, value in {**EXPECTED, **EXPECTED_LATER}.items():
            assert got.get(key) == value, (key, got.get(key))
        # The table keeps one row per ticket, its latest state.
        states = {t.ticket_id: t.status for t in
                  KpiStorage(store).ticket_rows(dt.date(Y, 1, 1), dt.date(Y + 1, 1, 1))}
        assert states[f"cx{Y}-T2"] == "solved" and len(states) == 5
        # NPS of churned vs retained from the stored answers and MRR movements.
        storage = KpiStorage(store)
        split = nps_by_churn(storage.nps_answers(at(4, 1, 0)), storage.mrr_points(at(4, 1, 0)),
                             at(4, 1, 0))
        assert (split.churned.nps, split.retained.nps) == (-100.0, 50.0)


# ------------------------------------------------------------------ CLI (embedded store)
@pytest.fixture
def cli_env(embedded_data_dir: Path, embedded_store: Store,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    monkeypatch.setattr(cli_support, "clock", lambda: dt.datetime(Y, 6, 15, tzinfo=dt.UTC))
    common_settings.cache_clear()
    yield
    common_settings.cache_clear()


@pytest.fixture
async def loaded(cli_env: None, embedded_store: Store) -> None:
    kpi = await load(embedded_store)
    write(embedded_store, ticket_processor(later_tickets()))
    await kpi.after_tickets(later_tickets())


def run(*args: str) -> str:
    result = CliRunner().invoke(kpi_cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_nps_tickets_and_nps_churn_cli_formats(loaded: None, tmp_path: Path) -> None:
    csv = run("nps", "--from", f"{Y}-02", "--to", f"{Y}-03", "--format", "csv")
    assert csv.strip().splitlines() == [
        "period,nps_responses,promoters,passives,detractors,nps,csat_responses,csat",
        f"{Y}-02,5,2,1,2,0.0,4,0.5000",
        f"{Y}-03,3,2,0,1,33.3,1,1.0000",
    ]
    quarter = json.loads(run("nps", "--from", f"{Y}-Q1", "--to", f"{Y}-Q1", "--by", "quarter",
                             "--format", "json"))
    assert quarter == [{"period": f"{Y}-Q1", "nps_responses": 8, "promoters": 4,
                        "passives": 1, "detractors": 3, "nps": 12.5, "csat_responses": 5,
                        "csat": 0.6}]
    tickets = json.loads(run("tickets", "--from", f"{Y}-02", "--to", f"{Y}-03",
                             "--format", "json"))
    assert tickets == [
        {"period": f"{Y}-02", "tickets_created": 4, "tickets_resolved": 2,
         "with_first_response": 3, "first_response_hours": 6.0, "paying_accounts": 4,
         "tickets_per_account": 1.0},
        {"period": f"{Y}-03", "tickets_created": 1, "tickets_resolved": 1,
         "with_first_response": 1, "first_response_hours": 0.5, "paying_accounts": 2,
         "tickets_per_account": 0.5},
    ]
    out = tmp_path / "churn.csv"
    run("nps-churn", "--as-of", f"{Y}-04-01", "--output", str(out))
    assert out.read_text().strip().splitlines() == [
        "group,accounts,promoters,passives,detractors,nps",
        "churned,2,0,0,2,-100.0",
        "retained,2,1,1,0,50.0",
    ]
    table = run("nps-churn", "--as-of", f"{Y}-04-01")
    assert "churned" in table and "retained" in table and "-100.0" in table
    weekly = run("tickets", "--from", f"{Y}-W06", "--to", f"{Y}-W06", "--by", "week")
    assert f"{Y}-W06" in weekly and "4.00" in weekly


# ------------------------------------------------------------------ demo data
def test_demo_churners_answer_lower_and_open_more_tickets_before_churning() -> None:
    from pulse_ingest.domain.experience_gen import AT_RISK_DAYS, _spells
    from pulse_ingest.domain.generator import generate_dataset

    data = generate_dataset(seed=11, days=120, accounts=300, end=dt.date(2026, 11, 30),
                            customer_experience=True)
    plain = generate_dataset(seed=11, days=120, accounts=300, end=dt.date(2026, 11, 30))
    assert plain.subscriptions == data.subscriptions and not plain.feedback  # opt-in
    assert {"feedback", "tickets"} <= set(data.by_kind())
    split = nps_by_churn(
        [NpsAnswer(f.account_id, f.score, f.responded_at) for f in data.feedback
         if f.survey == "nps"],
        [MrrPoint(s.account_id, s.occurred_at, s.mrr) for s in data.subscriptions],
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert split.churned.responses >= 3 and split.retained.responses >= 10
    assert split.churned.nps is not None and split.retained.nps is not None
    assert split.churned.nps < split.retained.nps - 30
    # Tickets per paying account-day: the last AT_RISK_DAYS before churning vs the rest.
    end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    risk = dt.timedelta(days=AT_RISK_DAYS)
    spells = {sp.account_id: sp for sp in _spells(data.subscriptions)}
    at_risk_days = sum(min(risk, sp.churned_at - sp.paying_from).days
                       for sp in spells.values() if sp.churned_at)
    other_days = sum(((sp.churned_at - risk if sp.churned_at else end) - sp.paying_from).days
                     for sp in spells.values()
                     if (sp.churned_at - risk if sp.churned_at else end) > sp.paying_from)

    def troubled(t: SupportTicket) -> bool:
        churned_at = spells[t.account_id].churned_at
        return churned_at is not None and churned_at - t.created_at < risk

    rate_at_risk = sum(1 for t in data.tickets if troubled(t)) / at_risk_days
    rate_otherwise = sum(1 for t in data.tickets if not troubled(t)) / other_days
    assert rate_at_risk > 1.5 * rate_otherwise
    assert all(f.score <= 5 or f.survey == "nps" for f in data.feedback)
    assert all("comment" not in f.model_dump() for f in data.feedback)
