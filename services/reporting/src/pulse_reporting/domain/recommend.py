"""Plain-language recommendations for manual review, with the numbers behind each.

Budget shifts go toward the channel with the best *marginal* ROAS: the extra attributed
revenue per extra dollar between the previous and this period (falls back to the average
ROAS when a channel's spend barely changed). Nothing here is ever applied automatically.
"""

from __future__ import annotations

from dataclasses import dataclass

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import BudgetRow, DimensionRow, Fmt, Recommendation

SHIFT_FRACTION = 0.10
MIN_SPEND_CHANGE = 0.05  # relative; below this the marginal ROAS is noise
MIN_GAP = 1.25  # best marginal ROAS must beat the worst by this factor


@dataclass(frozen=True)
class ChannelEconomics:
    channel: str
    spend: float
    revenue: float
    previous_spend: float | None
    previous_revenue: float | None

    @property
    def average_roas(self) -> float | None:
        return self.revenue / self.spend if self.spend > 0 else None

    @property
    def marginal_roas(self) -> tuple[float | None, str]:
        if self.previous_spend is not None and self.previous_revenue is not None:
            d_spend = self.spend - self.previous_spend
            base = max(self.previous_spend, 1e-9)
            if abs(d_spend) / base >= MIN_SPEND_CHANGE and abs(d_spend) > 1e-9:
                return (self.revenue - self.previous_revenue) / d_spend, "marginal"
        return self.average_roas, "average"


def channel_economics(
    current: list[DimensionRow], previous: dict[str, DimensionRow]
) -> list[ChannelEconomics]:
    out: list[ChannelEconomics] = []
    for row in current:
        if row.spend is None or row.attributed_revenue is None or row.spend <= 0:
            continue
        prev = previous.get(row.name)
        out.append(
            ChannelEconomics(
                channel=row.name,
                spend=row.spend,
                revenue=row.attributed_revenue,
                previous_spend=prev.spend if prev else None,
                previous_revenue=prev.attributed_revenue if prev else None,
            )
        )
    return out


def _ratio(value: float | None) -> str:
    return fmt_value(value, Fmt.RATIO)


def recommend(
    channels: list[DimensionRow],
    previous_channels: dict[str, DimensionRow],
    bottom_campaigns: list[DimensionRow],
    budget: list[BudgetRow],
    model: str,
) -> list[Recommendation]:
    recs: list[Recommendation] = []
    econ = [e for e in channel_economics(channels, previous_channels)
            if e.marginal_roas[0] is not None]
    if len(econ) >= 2:
        ranked = sorted(econ, key=lambda e: (e.marginal_roas[0] or 0.0, e.channel))
        worst, best = ranked[0], ranked[-1]
        w_roas, w_kind = worst.marginal_roas
        b_roas, b_kind = best.marginal_roas
        assert w_roas is not None and b_roas is not None
        if b_roas > 0 and (w_roas <= 0 or b_roas >= MIN_GAP * w_roas):
            amount = round(worst.spend * SHIFT_FRACTION, 2)
            uplift = amount * (b_roas - w_roas)
            recs.append(
                Recommendation(
                    action="shift_budget",
                    title=(
                        f"Shift {fmt_value(amount, Fmt.MONEY)} "
                        f"({SHIFT_FRACTION:.0%} of its spend) from {worst.channel} "
                        f"to {best.channel}"
                    ),
                    rationale=(
                        f"Under {model} attribution, {best.channel} returned "
                        f"{_ratio(b_roas)} ({b_kind} ROAS) per extra dollar vs "
                        f"{_ratio(w_roas)} ({w_kind}) for {worst.channel}; at those rates "
                        f"the shift would add about {fmt_value(uplift, Fmt.MONEY)} attributed "
                        "revenue. Marginal returns fall with scale: move in steps and re-check."
                    ),
                    from_channel=worst.channel,
                    to_channel=best.channel,
                    amount=amount,
                    numbers={
                        "from_marginal_roas": w_roas,
                        "to_marginal_roas": b_roas,
                        "from_spend": worst.spend,
                        "to_spend": best.spend,
                        "expected_revenue_change": uplift,
                    },
                )
            )
    for campaign in bottom_campaigns:
        if campaign.roas is not None and campaign.roas < 1.0 and (campaign.spend or 0) > 0:
            recs.append(
                Recommendation(
                    action="review_campaign",
                    title=f"Review campaign {campaign.name} (ROAS {_ratio(campaign.roas)})",
                    rationale=(
                        f"It spent {fmt_value(campaign.spend, Fmt.MONEY)} for "
                        f"{fmt_value(campaign.attributed_revenue, Fmt.MONEY)} attributed "
                        f"revenue under {model}: below break-even. Consider pausing or "
                        "re-targeting it."
                    ),
                    numbers={
                        "spend": campaign.spend,
                        "attributed_revenue": campaign.attributed_revenue,
                        "roas": campaign.roas,
                    },
                )
            )
    for row in budget:
        if row.channel == "all" or row.pacing is None:
            continue
        if row.pacing > 1.1 or row.pacing < 0.9:
            over = row.pacing > 1.1
            recs.append(
                Recommendation(
                    action="adjust_pacing",
                    title=(
                        f"{row.channel} is {'over' if over else 'under'}-pacing its "
                        f"{row.period} budget ({fmt_value(row.pacing, Fmt.PERCENT)})"
                    ),
                    rationale=(
                        f"Spend to date {fmt_value(row.spend_to_date, Fmt.MONEY)} against a "
                        f"budget of {fmt_value(row.budget, Fmt.MONEY)}; projected month-end "
                        f"spend {fmt_value(row.projected_spend, Fmt.MONEY)}."
                    ),
                    from_channel=row.channel,
                    numbers={
                        "budget": row.budget,
                        "spend_to_date": row.spend_to_date,
                        "pacing": row.pacing,
                        "projected_spend": row.projected_spend,
                    },
                )
            )
    return recs
