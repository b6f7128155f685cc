"""Campaign KPIs: the channel and campaign KPIs of spend, attribution credits and budgets,
recomputed member by member.

The breakdowns (every dimension but ``all``) split into two disjoint sets of KPI keys:

* **campaign KPIs**: the flow KPIs (spend, impressions, clicks, credited leads …, CTR,
  ROAS …) and the budget KPIs (budget, spend to date, pacing …) of the ``channel`` and
  ``campaign`` dimensions. They are computed from spend, credits and budgets only, and a
  spend row, a credit or a budget counts in its own channel and campaign only, so a batch
  changes the campaign KPIs of the members it touched and of no other: those are
  recomputed, from those members' rows (the KPI service's campaign pass, right after the
  batch);
* **the other breakdowns**: trials by first-touch channel, deliverability by sending domain
  and ESP campaign, and the account dimensions (segment …), computed from trials,
  deliverability and the accounts' MRR, which never read spend, credits or budgets
  (the KPI service's periodic breakdown pass).

:func:`campaign_kpis` over every member's rows gives exactly the campaign KPIs that
:func:`pulse_kpi.domain.compute.compute` gives over all the breakdown dimensions; over some
members' rows (``members``), exactly those members' values. tests/kpi/test_kpi_campaigns.py
checks both against the whole computation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace

from pulse_kpi.domain.compute import KpiValue, Params, compute
from pulse_kpi.domain.facts import Facts, Scope

#: The dimensions of campaign KPIs.
CAMPAIGN_DIMS: tuple[str, ...] = ("channel", "campaign")
#: The facts campaign KPIs are computed from; the other breakdowns never read them.
CAMPAIGN_PARTS = frozenset({"spend", "credits", "budgets"})

#: (dimension, value): a channel or a campaign.
Member = tuple[str, str]
#: (grain, period start, dimension, value): a member that has values in a period.
KnownMember = tuple[str, dt.date, str, str]


def members_of(pairs: Iterable[tuple[str, str]]) -> frozenset[Member]:
    """The members that (channel, campaign id) pairs count in (spend rows, credits,
    budgets); an empty campaign id counts in its channel only."""
    out: set[Member] = set()
    for channel, campaign in pairs:
        out.add(("channel", channel))
        if campaign:
            out.add(("campaign", campaign))
    return frozenset(out)


def campaign_scope(
    flow_days: Iterable[dt.date],
    budget_months: Iterable[dt.date],
    known: Iterable[KnownMember],
    members: frozenset[Member] | None = None,
) -> Scope:
    """The campaign KPIs of the periods of ``flow_days`` (flows and budgets) and of
    ``budget_months`` (budgets), for ``members`` (None: every member). ``known``: members
    with stored values, recomputed even without rows (a credit that moved to another
    channel leaves 0 behind, not a stale value)."""
    return Scope(
        flow_days=frozenset(flow_days),
        budget_months=frozenset(budget_months),
        dimensions=CAMPAIGN_DIMS,
        known_members=frozenset(
            k for k in known
            if k[2] in CAMPAIGN_DIMS and (members is None or (k[2], k[3]) in members)
        ),
    )


def campaign_kpis(
    facts: Facts, scope: Scope, as_of: dt.date, p: Params,
    members: frozenset[Member] | None = None,
) -> list[KpiValue]:
    """The campaign KPIs of ``scope`` (:func:`campaign_scope`) for ``members`` (None: all).

    With ``members``, ``facts`` may hold only the rows counting in them (their channels'
    and campaigns' spend, credits and budgets) plus ``credit_models``: a member's values
    are sums over its own rows, so channels are computed from their channels' rows and
    campaigns from their campaigns' rows (not the other campaigns of a member channel,
    whose partial values would be dropped anyway). Only spend, credits and budgets are
    read, so no other breakdown comes out of here."""
    if members is None:
        return compute(_own(facts), scope, as_of, p)
    out: list[KpiValue] = []
    for dim in CAMPAIGN_DIMS:
        values = frozenset(v for d, v in members if d == dim)
        if values:
            rows = _rows_in(facts, dim, values)
            out += [v for v in compute(rows, replace(scope, dimensions=(dim,)), as_of, p)
                    if v.dimension_value in values]
    return out


def _rows_in(facts: Facts, dim: str, values: frozenset[str]) -> Facts:
    """The spend, credit and budget rows counting in ``values`` of ``dim``."""
    def counts(channel: str, campaign: str) -> bool:
        return (channel if dim == "channel" else campaign) in values

    return Facts(
        spend=[s for s in facts.spend if counts(s.channel, s.campaign_id)],
        credits=[c for c in facts.credits if counts(c.channel, c.campaign_id)],
        budgets=[b for b in facts.budgets if counts(b.channel, b.campaign_id)],
        credit_models=facts.credit_models,
    )


def _own(facts: Facts) -> Facts:
    """Only what campaign KPIs read (so no other breakdown comes out of compute)."""
    return Facts(spend=facts.spend, credits=facts.credits, budgets=facts.budgets,
                 credit_models=facts.credit_models)
