"""Synthetic customer experience for the demo dataset
(``generate_dataset(customer_experience=True)``): NPS / CSAT answers and support tickets.

Derived from the generated subscription events, so it is coherent with billing:

* paying accounts get an NPS survey every :data:`NPS_EVERY_DAYS` days from their first paid
  day (each answered with probability :data:`NPS_ANSWER_RATE`); accounts that cancel later
  answer from :data:`CHURNER_SCORES` (mostly detractors) in their last
  :data:`AT_RISK_DAYS` days before churning, and are surveyed once in that span whatever
  the schedule, so the report's "NPS of churned vs retained accounts" has evidence;
  everyone else answers from :data:`HAPPY_SCORES` (mostly promoters and passives);
* paying accounts open tickets at :data:`TICKETS_PER_DAY` a day, :data:`AT_RISK_TICKETS`
  times as many in their last :data:`AT_RISK_DAYS` days before churning; first response
  and resolution times depend on the channel (chat fast, e-mail slow); a ticket still open
  at the window's end has no resolution (or no response) yet;
* a CSAT survey follows some resolved tickets (satisfied more often for retained accounts).

Own random generator (seeded from the dataset's seed) and ids made of account and counter,
so turning it on changes no other event of the dataset. Scores only: no comments.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from pulse_shared.events import FeedbackResponse, Subscription, SupportTicket

NPS_EVERY_DAYS = 90
NPS_FIRST_AFTER_DAYS = 30
NPS_ANSWER_RATE = 0.6
AT_RISK_DAYS = 75
TICKETS_PER_DAY = 1 / 40
AT_RISK_TICKETS = 3.0
CSAT_RATE = 0.5
#: (score, weight): retained accounts are mostly promoters and passives …
HAPPY_SCORES: tuple[tuple[int, float], ...] = (
    (10, 0.24), (9, 0.26), (8, 0.2), (7, 0.12), (6, 0.07), (5, 0.05), (4, 0.03), (3, 0.03),
)
#: … accounts about to churn mostly detractors.
CHURNER_SCORES: tuple[tuple[int, float], ...] = (
    (8, 0.03), (7, 0.07), (6, 0.2), (5, 0.2), (4, 0.18), (3, 0.16), (2, 0.09), (1, 0.04),
    (0, 0.03),
)
#: channel → (weight, mean hours to first response, mean hours from response to solved)
CHANNELS: dict[str, tuple[float, float, float]] = {
    "email": (0.6, 6.0, 30.0), "chat": (0.3, 0.25, 8.0), "phone": (0.1, 0.05, 12.0),
}


@dataclass(frozen=True)
class _Spell:
    """One account's paying life inside the data: first paid moment, churn (if any)."""

    account_id: str
    paying_from: dt.datetime
    churned_at: dt.datetime | None


def _spells(subscriptions: Sequence[Subscription]) -> list[_Spell]:
    by_account: dict[str, list[Subscription]] = defaultdict(list)
    for s in subscriptions:
        by_account[s.account_id].append(s)
    out: list[_Spell] = []
    for account, events in sorted(by_account.items()):
        events.sort(key=lambda e: (e.occurred_at, e.event_id))
        paid = [e for e in events if e.mrr > Decimal(0)]
        if not paid:
            continue
        last = events[-1]
        churned = None
        if last.mrr == 0:
            paying = max(i for i, e in enumerate(events) if e.mrr > 0)
            churned = events[paying + 1].occurred_at
        out.append(_Spell(account, paid[0].occurred_at, churned))
    return out


def _pick(rng: random.Random, weighted: Sequence[tuple[int, float]]) -> int:
    return rng.choices([s for s, _ in weighted], [w for _, w in weighted])[0]


def customer_experience(
    subscriptions: Sequence[Subscription], end: dt.date, seed: int, prefix: str,
) -> tuple[list[FeedbackResponse], list[SupportTicket]]:
    """NPS / CSAT answers and ticket states of the paying accounts, over their whole paying
    life up to ``end`` (as far back as their subscriptions go, so trends have history)."""
    rng = random.Random(f"{seed}|customer-experience")
    cutoff = dt.datetime(end.year, end.month, end.day, 23, 59, tzinfo=dt.UTC)
    feedback: list[FeedbackResponse] = []
    tickets: list[SupportTicket] = []
    counter = 0

    def next_id(kind: str, account: str) -> str:
        nonlocal counter
        counter += 1
        return f"gen-{prefix}-{kind}-{account}-{counter:06d}"

    def answer(account: str, survey: str, score: int, when: dt.datetime) -> None:
        feedback.append(FeedbackResponse(event_id=next_id(survey, account), account_id=account,
                                         survey=survey, score=score, responded_at=when))

    for spell in _spells(subscriptions):
        last_paid = spell.churned_at or cutoff
        at_risk_from = (spell.churned_at - dt.timedelta(days=AT_RISK_DAYS)
                        if spell.churned_at else None)

        def at_risk(moment: dt.datetime, risk_from: dt.datetime | None = at_risk_from) -> bool:
            return risk_from is not None and moment >= risk_from

        # NPS surveys on a schedule from the first paid day, plus one before churning.
        survey_at = spell.paying_from + dt.timedelta(days=NPS_FIRST_AFTER_DAYS,
                                                     hours=rng.uniform(0, 8))
        answered_at_risk = False
        while survey_at < last_paid:
            if rng.random() < NPS_ANSWER_RATE:
                risky = at_risk(survey_at)
                answered_at_risk |= risky
                answer(spell.account_id, "nps",
                       _pick(rng, CHURNER_SCORES if risky else HAPPY_SCORES), survey_at)
            survey_at += dt.timedelta(days=NPS_EVERY_DAYS, hours=rng.uniform(-12, 12))
        if spell.churned_at is not None and at_risk_from is not None and not answered_at_risk:
            when = spell.churned_at - dt.timedelta(days=rng.uniform(10, AT_RISK_DAYS - 5))
            if when > spell.paying_from:
                answer(spell.account_id, "nps", _pick(rng, CHURNER_SCORES), when)

        # Tickets, day by day while paying (more in the at-risk span).
        day = spell.paying_from.date()
        while dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) < last_paid:
            noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
            rate = TICKETS_PER_DAY * (AT_RISK_TICKETS if at_risk(noon) else 1.0)
            if rng.random() < rate:
                tickets.append(_ticket(rng, spell.account_id, day, cutoff,
                                       next_id("ticket", spell.account_id), at_risk(noon)))
                resolved = tickets[-1].resolved_at
                if resolved is not None and rng.random() < CSAT_RATE:
                    when = resolved + dt.timedelta(hours=rng.uniform(1, 20))
                    if when <= cutoff:
                        happy = rng.random() < (0.45 if at_risk(noon) else 0.85)
                        answer(spell.account_id, "csat",
                               rng.choice((4, 5)) if happy else rng.choice((1, 2, 3)), when)
            day += dt.timedelta(days=1)
    feedback.sort(key=lambda e: (e.responded_at, e.event_id))
    tickets.sort(key=lambda e: (e.created_at, e.event_id))
    return feedback, tickets


def _ticket(rng: random.Random, account: str, day: dt.date, cutoff: dt.datetime,
            event_id: str, troubled: bool) -> SupportTicket:
    channel = rng.choices(list(CHANNELS), [w for w, _, _ in CHANNELS.values()])[0]
    _, respond_mean, solve_mean = CHANNELS[channel]
    created = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(
        hours=rng.triangular(7, 20, 13))
    slower = 1.6 if troubled else 1.0  # harder problems take longer
    response: dt.datetime | None = created + dt.timedelta(
        hours=rng.expovariate(1 / (respond_mean * slower)))
    resolved: dt.datetime | None = (response or created) + dt.timedelta(
        hours=rng.expovariate(1 / (solve_mean * slower)))
    if response is not None and response > cutoff:
        response = resolved = None
    if resolved is not None and resolved > cutoff:
        resolved = None
    if resolved is None:
        status = "open" if response is None else "pending"
    else:
        status = "closed" if cutoff - resolved > dt.timedelta(days=4) else "solved"
    return SupportTicket(event_id=event_id, ticket_id=event_id.replace("gen-", "tk-", 1),
                         account_id=account, created_at=created, first_response_at=response,
                         resolved_at=resolved, status=status, channel=channel)
