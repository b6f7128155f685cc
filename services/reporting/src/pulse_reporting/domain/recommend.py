"""Recommendations for manual review, each with the evidence behind it. Never applied.

Attribution decides what a campaign "returns", and the models disagree (last-touch gives
paid search almost nothing, first-touch most of it). So every rule reads the ROAS under
**every model the report shows** (``roas_by_model``), not only the one the report is
rendered under:

- **Consensus ROAS** is the median of the ROAS values over the shown models (models
  without a value are left out). It ranks campaigns and channels.
- **pause / reduce** only when the campaign is below break-even (ROAS < 1) under *every*
  shown model: a campaign that pays back under any model is never cut. ``pause`` when the
  best model still returns under ``PAUSE_BELOW`` (0.5x), else ``reduce`` by
  ``REDUCE_FRACTION`` of its spend.
- **investigate** when the consensus is below break-even but at least one model says it
  pays back: the models disagree, a human has to look (journeys, offline conversions).
- **scale** when the campaign pays back under every shown model and its consensus is at
  least ``SCALE_ABOVE``: add ``SCALE_FRACTION`` of its spend, in steps.
- **shift_budget** ``SHIFT_FRACTION`` of the source's spend from the channel with the
  lowest consensus ROAS to the one with the highest, only when the target is above
  break-even under the consensus and beats the source by ``MIN_GAP``. (A shift moves
  money between channels; it is not a campaign cut, so the source may pay back too.)
- **fix_pacing** for a channel's budget pacing outside 90–110 %.
- Where a published marketing mix model covers the report period, the budget shift comes
  from its optimiser instead (``domain/mmm.py``: expected gain with its 90 % interval and
  the run it rests on); the attribution shift above is then left out.

**Confidence** (documented rule, the same for every action):

- ``high``: every shown model agrees with the action's reading (all below / all above
  break-even; for a shift, the target beats the source under each model), at least
  ``MIN_MODELS_HIGH`` models are shown and the spend behind it is at least
  ``MIN_SPEND_HIGH``;
- ``medium``: at least two thirds of the models agree and at least two are shown;
- ``low``: anything else (one model only, or the models split).
Pacing is arithmetic on budgets and spend, not attribution: always ``high``.

**Ranking**: by spend at risk (the spend the consensus says does not come back:
``spend × max(0, 1 − consensus)``; for a shift, the amount moved; for pacing, the projected
over- or under-spend), ties by spend, then by name — a big campaign is never hidden behind
an alphabetical tie.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import (
    Action,
    BudgetRow,
    Confidence,
    DimensionRow,
    Fmt,
    Recommendation,
)

BREAK_EVEN = 1.0
PAUSE_BELOW = 0.5
SCALE_ABOVE = 2.0
REDUCE_FRACTION = 0.25
SCALE_FRACTION = 0.10
SHIFT_FRACTION = 0.10
MIN_GAP = 1.25  # target consensus ROAS must beat the source's by this factor
MIN_MODELS_HIGH = 3
MIN_SPEND_HIGH = 1000.0
PACING_LOW, PACING_HIGH = 0.9, 1.1


def consensus(roas_by_model: Mapping[str, float | None]) -> float | None:
    """Median ROAS over the models that have a value (None when none has)."""
    values = [v for v in roas_by_model.values() if v is not None]
    return statistics.median(values) if values else None


def confidence(agreeing: int, models: int, spend: float | None) -> Confidence:
    if models >= MIN_MODELS_HIGH and agreeing == models and (spend or 0.0) >= MIN_SPEND_HIGH:
        return Confidence.HIGH
    if models >= 2 and agreeing * 3 >= models * 2:
        return Confidence.MEDIUM
    return Confidence.LOW


def _ratio(value: float | None) -> str:
    return fmt_value(value, Fmt.RATIO)


def _money(value: float | None) -> str:
    return fmt_value(value, Fmt.MONEY)


def _spread(roas: Mapping[str, float | None]) -> str:
    """``0.00x (last_touch) – 1.67x (first_touch)``: the range over the models."""
    known = sorted(((v, m) for m, v in roas.items() if v is not None))
    if not known:
        return "n/a"
    (low, low_m), (high, high_m) = known[0], known[-1]
    if len(known) == 1:
        return f"{_ratio(low)} ({low_m})"
    return f"{_ratio(low)} ({low_m}) to {_ratio(high)} ({high_m})"


def campaign_recommendation(row: DimensionRow) -> Recommendation | None:
    roas = row.roas_by_model
    values = [v for v in roas.values() if v is not None]
    spend = row.spend or 0.0
    if not values or spend <= 0:
        return None
    middle = consensus(roas)
    assert middle is not None
    below = sum(v < BREAK_EVEN for v in values)
    above = len(values) - below
    at_risk = spend * max(0.0, 1.0 - middle)
    numbers: dict[str, float | None] = {
        "spend": spend, "attributed_revenue": row.attributed_revenue,
        "consensus_roas": middle, "models_below_break_even": float(below),
        "models": float(len(values)),
    }

    def make(
        action: Action, amount: float | None, level: Confidence, reason: str
    ) -> Recommendation:
        return Recommendation(
            action=action, campaign_id=row.name, amount=amount, roas_by_model=dict(roas),
            consensus_roas=middle, confidence=level, reason=reason, spend=spend,
            spend_at_risk=at_risk, numbers=numbers,
        )

    if above == 0:  # below break-even under every shown model
        best = max(values)
        pause = best < PAUSE_BELOW
        amount = spend if pause else round(spend * REDUCE_FRACTION, 2)
        return make(
            Action.PAUSE if pause else Action.REDUCE,
            amount,
            confidence(len(values), len(values), spend),
            (
                f"{row.name} spent {_money(spend)} and is below break-even under every model "
                f"with a result ({_spread(roas)}); "
                + ("pause it and re-check next period." if pause else
                   f"cut {_money(amount)} ({REDUCE_FRACTION:.0%}) and re-check.")
            ),
        )
    if middle < BREAK_EVEN:  # some model says it pays back: never cut, look closer
        return make(
            Action.INVESTIGATE,
            None,
            Confidence.LOW,
            (
                f"{row.name} spent {_money(spend)}: median ROAS {_ratio(middle)} is below "
                f"break-even but {above} of {len(values)} models see it paying back "
                f"({_spread(roas)}); check its journeys before changing its budget."
            ),
        )
    if below == 0 and middle >= SCALE_ABOVE:
        amount = round(spend * SCALE_FRACTION, 2)
        return make(
            Action.SCALE,
            amount,
            confidence(len(values), len(values), spend),
            (
                f"{row.name} pays back under every model with a result ({_spread(roas)}, median "
                f"{_ratio(middle)}); add {_money(amount)} ({SCALE_FRACTION:.0%}) in steps, "
                "returns fall with scale."
            ),
        )
    return None


def shift_recommendation(channels: Sequence[DimensionRow]) -> Recommendation | None:
    ranked = sorted(
        (c for c in channels if c.consensus_roas is not None and (c.spend or 0.0) > 0),
        key=lambda c: (c.consensus_roas or 0.0, -(c.spend or 0.0), c.name),
    )
    if len(ranked) < 2:
        return None
    source, target = ranked[0], ranked[-1]
    s_mid, t_mid = source.consensus_roas, target.consensus_roas
    assert s_mid is not None and t_mid is not None
    if t_mid < BREAK_EVEN or t_mid < MIN_GAP * max(s_mid, 0.0) or t_mid <= s_mid:
        return None
    models = sorted(set(source.roas_by_model) | set(target.roas_by_model))
    pairs = [
        (source.roas_by_model.get(m), target.roas_by_model.get(m)) for m in models
    ]
    compared = [(s, t) for s, t in pairs if s is not None and t is not None]
    agreeing = sum(t > s and t >= BREAK_EVEN for s, t in compared)
    spend = source.spend or 0.0
    amount = round(spend * SHIFT_FRACTION, 2)
    uplift = amount * (t_mid - s_mid)
    return Recommendation(
        action=Action.SHIFT_BUDGET,
        channel=source.name,
        to_channel=target.name,
        amount=amount,
        roas_by_model={
            **{f"{source.name}:{m}": v for m, v in source.roas_by_model.items()},
            **{f"{target.name}:{m}": v for m, v in target.roas_by_model.items()},
        },
        consensus_roas=t_mid,
        confidence=confidence(agreeing, len(compared), spend),
        reason=(
            f"Move {_money(amount)} ({SHIFT_FRACTION:.0%} of its spend) from {source.name} "
            f"(median ROAS {_ratio(s_mid)}) to {target.name} (median {_ratio(t_mid)}, "
            f"above break-even); at those rates about {_money(uplift)} more revenue. "
            "Move in steps and re-check."
        ),
        spend=spend,
        spend_at_risk=amount,
        numbers={
            "from_consensus_roas": s_mid, "to_consensus_roas": t_mid, "from_spend": spend,
            "to_spend": target.spend, "expected_revenue_change": uplift,
        },
    )


def pacing_recommendation(
    row: BudgetRow, roas_by_model: Mapping[str, float | None]
) -> Recommendation | None:
    if row.channel == "all" or row.pacing is None:
        return None
    if PACING_LOW <= row.pacing <= PACING_HIGH:
        return None
    over = row.pacing > PACING_HIGH
    gap = (
        abs(row.projected_spend - row.budget)
        if row.projected_spend is not None and row.budget is not None else 0.0
    )
    return Recommendation(
        action=Action.FIX_PACING,
        channel=row.channel,
        amount=round(gap, 2) if gap else None,
        roas_by_model=dict(roas_by_model),
        consensus_roas=consensus(roas_by_model),
        confidence=Confidence.HIGH,
        reason=(
            f"{row.channel} is {'over' if over else 'under'}-pacing its {row.period} budget "
            f"({fmt_value(row.pacing, Fmt.PERCENT)}): spent {_money(row.spend_to_date)} of "
            f"{_money(row.budget)}, projected {_money(row.projected_spend)}."
        ),
        spend=row.spend_to_date,
        spend_at_risk=gap,
        numbers={
            "budget": row.budget, "spend_to_date": row.spend_to_date, "pacing": row.pacing,
            "projected_spend": row.projected_spend,
        },
    )


def rank(recs: Sequence[Recommendation]) -> list[Recommendation]:
    """Spend at risk first, then spend, then name (never alphabetical alone)."""
    return sorted(
        recs,
        key=lambda r: (
            -r.spend_at_risk, -(r.spend or 0.0), r.campaign_id or r.channel or "",
            r.action.value,
        ),
    )


def recommend(
    channels: Sequence[DimensionRow],
    campaigns: Sequence[DimensionRow],
    budget: Sequence[BudgetRow],
    *,
    shift: bool = True,
) -> list[Recommendation]:
    """All recommendations, ranked. ``channels``/``campaigns`` carry ``roas_by_model``.
    ``shift=False`` leaves out attribution's budget shift (a current marketing mix model
    advises the shift instead: ``domain/mmm.py``)."""
    recs: list[Recommendation] = []
    found = shift_recommendation(channels) if shift else None
    if found is not None:
        recs.append(found)
    for campaign in campaigns:
        rec = campaign_recommendation(campaign)
        if rec is not None:
            recs.append(rec)
    by_channel = {c.name: c.roas_by_model for c in channels}
    for row in budget:
        rec = pacing_recommendation(row, by_channel.get(row.channel, {}))
        if rec is not None:
            recs.append(rec)
    return rank(recs)
