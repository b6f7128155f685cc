"""The marketing mix model (MMM) in reports: which run a report shows, the section, and
the budget advice it supports. Pure: no I/O, no clock.

The model itself lives in ``pulse_mmm`` (PyMC); reporting never imports it. It reads the
stored results (``mmm_*`` tables, migration 0070) through its own storage and decides here:

- **Which run**: a run *covers* a report period when its window starts on or before the
  period's last day and ends no more than :data:`MAX_END_GAP_DAYS` before it (a model
  fitted on data up to mid-period, or refitted weekly, still speaks for the period). Of
  the covering runs the report shows the latest **published** one, preferring the default
  target (won revenue) over other targets. A covering run that failed its diagnostics is
  never shown; when it is the latest fit, the report says so and why (its reason).
- **Without a published covering run** the section says plainly that there are no
  results (n/a, never 0) and why: no fit yet, the latest fit was rejected (its reason), or
  the fitted windows do not cover the period.
- **Expected gain** of the optimiser's split: the sum over channels of expected minus
  current contribution. Its interval is the sum of the per-channel 90 % bounds minus the
  current contribution: the stored bounds are per channel, so this adds their widths
  (a conservative interval; the channels' draws are not independent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import (
    Action,
    Confidence,
    Fmt,
    MmmAllocation,
    MmmChannel,
    MmmCurve,
    MmmCurvePoint,
    MmmRunInfo,
    MmmSection,
    MmmStatus,
    Recommendation,
)
from pulse_reporting.domain.periods import Period, ReportKind
from pulse_shared.attribution_models import DEFAULT_MODEL

DEFAULT_TARGET = "won_revenue"
#: A run ending this many days before the report period's last day still covers it.
MAX_END_GAP_DAYS = 31
#: The report kinds with the model's section: a day or a week is too short a period for a
#: model of weekly spend (the daily briefing and the weekly report never read its results;
#: ``pulse demo`` writes them while the model is still being fitted).
KINDS_WITH_MODEL: frozenset[ReportKind] = frozenset(
    {ReportKind.MONTHLY, ReportKind.QUARTERLY, ReportKind.ANNUAL})
#: A shift smaller than this share of the budget is not worth advising.
MIN_SHIFT_SHARE = 0.02
TARGET_LABELS = {"won_revenue": "won revenue", "new_mrr": "new MRR"}
GRAIN_LABELS = {"week": "weekly", "day": "daily"}
_PERIOD_WORD = {"week": "weeks", "day": "days"}


@dataclass(frozen=True)
class MmmInputs:
    """What storage read for a report: every fit, and the results of the one
    :func:`select_runs` shows (empty when it shows none)."""

    runs: Sequence[MmmRunInfo] = ()
    channels: Sequence[MmmChannel] = ()
    curves: Mapping[str, Sequence[MmmCurvePoint]] = field(default_factory=dict)
    allocation: Sequence[MmmAllocation] = ()
    allocation_budget: float | None = None
    allocation_periods: int | None = None


def target_label(target: str) -> str:
    return TARGET_LABELS.get(target, target.removeprefix("kpi:"))


def run_label(run: MmmRunInfo) -> str:
    """``run v3 of 2026-11-30``: how every piece of MMM evidence names its run."""
    return f"run v{run.version} of {run.finished_at.date().isoformat()}"


def covers(run: MmmRunInfo, period: Period) -> bool:
    """Whether ``run``'s window speaks for ``period`` (see the module docstring)."""
    return (
        run.date_from <= period.last_day
        and run.date_to >= period.last_day - dt.timedelta(days=MAX_END_GAP_DAYS)
    )


def _newest(runs: Sequence[MmmRunInfo]) -> MmmRunInfo | None:
    return max(runs, key=lambda r: (r.finished_at, r.version, r.run_id), default=None)


def select_runs(
    runs: Sequence[MmmRunInfo], period: Period
) -> tuple[MmmRunInfo | None, MmmRunInfo | None]:
    """(published run to show, rejected fit to mention) for ``period``.

    The rejected fit is the latest covering fit when it failed and is newer than the run
    shown (or there is none to show)."""
    covering = [r for r in runs if covers(r, period)]
    published = [r for r in covering if r.published]
    preferred = [r for r in published if r.target == DEFAULT_TARGET] or published
    shown = _newest(preferred)
    same_target = [r for r in covering if shown is None or r.target == shown.target]
    latest = _newest(same_target)
    rejected = latest if latest is not None and not latest.published else None
    return shown, rejected


def _window(run: MmmRunInfo) -> str:
    return f"{run.date_from.isoformat()} – {run.date_to.isoformat()}"


def _fit_summary(run: MmmRunInfo) -> str:
    parts = [f"{run.periods} {_PERIOD_WORD.get(run.grain, 'periods')}"]
    if run.max_rhat is not None:
        parts.append(f"max R-hat {run.max_rhat:.3f}")
    if run.min_ess is not None:
        parts.append(f"min ESS {run.min_ess:,.0f}")
    if run.holdout_mape is not None and run.holdout_periods:
        parts.append(
            f"hold-out MAPE {run.holdout_mape * 100:.1f}% over the last {run.holdout_periods}"
        )
    if run.r_squared is not None:
        parts.append(f"R² {run.r_squared:.2f}")
    return ", ".join(parts)


def _none_statement(
    runs: Sequence[MmmRunInfo], rejected: MmmRunInfo | None, period: Period
) -> str:
    if rejected is not None:
        return (
            f"No incrementality results for {period.label} (n/a): the latest marketing mix "
            f"model fit ({run_label(rejected)}, {_window(rejected)}) was rejected: "
            f"{rejected.reason or 'no reason recorded'}."
        )
    published = _newest([r for r in runs if r.published])
    if published is not None:
        return (
            f"No incrementality results for {period.label} (n/a): the latest published "
            f"marketing mix model ({run_label(published)}) covers {_window(published)}, "
            "not this period. Run `pulse mmm fit` over it."
        )
    latest = _newest(runs)
    if latest is not None:  # only rejected fits, none covering the period
        return (
            f"No incrementality results for {period.label} (n/a): no marketing mix model "
            f"covers it; the latest fit ({run_label(latest)}, {_window(latest)}) was "
            f"rejected: {latest.reason or 'no reason recorded'}."
        )
    return (
        f"No incrementality results for {period.label} (n/a): no marketing mix model has "
        "been fitted yet. Run `pulse mmm fit`."
    )


def expected_gain(
    allocation: Sequence[MmmAllocation],
) -> tuple[float | None, float | None, float | None]:
    """(gain, lower, upper) of the recommended split over the current mix. The mean gain
    is the sum of the channels' mean gains (means add up); the interval is the one the
    optimiser computed per posterior draw for the whole split (quantiles do not add up),
    None when the allocation predates it."""
    if not allocation:
        return None, None, None
    current = sum(a.current_contribution for a in allocation)
    gain = sum(a.expected_contribution for a in allocation) - current
    return gain, allocation[0].gain_lower, allocation[0].gain_upper


def _curves(
    curves: Mapping[str, Sequence[MmmCurvePoint]],
    allocation: Sequence[MmmAllocation],
    periods: int | None,
    channels: Sequence[MmmChannel],
    run: MmmRunInfo,
) -> list[MmmCurve]:
    """Curves with the current and recommended spend per model period marked: from the
    allocation (its horizon's current mix) when there is one, else the window's average."""
    by_alloc = {a.channel: a for a in allocation}
    by_channel = {c.channel: c for c in channels}
    out: list[MmmCurve] = []
    for channel in sorted(curves):
        points = sorted(curves[channel], key=lambda p: p.spend)
        alloc = by_alloc.get(channel)
        current: float | None
        recommended: float | None = None
        if alloc is not None and periods:
            current = alloc.current_spend / periods
            recommended = alloc.recommended_spend / periods
        elif channel in by_channel and run.periods:
            current = by_channel[channel].spend / run.periods
        else:
            current = None
        out.append(MmmCurve(channel=channel, points=points, current_spend=current,
                            recommended_spend=recommended))
    return out


def mmm_section(
    period: Period,
    runs: Sequence[MmmRunInfo],
    channels: Sequence[MmmChannel] = (),
    curves: Mapping[str, Sequence[MmmCurvePoint]] | None = None,
    allocation: Sequence[MmmAllocation] = (),
    allocation_budget: float | None = None,
    allocation_periods: int | None = None,
) -> MmmSection:
    """The section for ``period``. ``channels``/``curves``/``allocation`` are the results
    of the run :func:`select_runs` shows (ignored when it shows none)."""
    shown, rejected = select_runs(runs, period)
    if shown is None:
        return MmmSection(
            status=MmmStatus.REJECTED if rejected is not None else MmmStatus.NONE,
            statement=_none_statement(runs, rejected, period),
            rejected=rejected,
        )
    ordered = sorted(channels, key=lambda c: (-(c.roi if c.roi is not None else -1e18),
                                              c.channel))
    gain, low, high = expected_gain(allocation)
    statement = (
        f"Marketing mix model {run_label(shown)}: {target_label(shown.target)} explained by "
        f"{GRAIN_LABELS.get(shown.grain, shown.grain)} spend per channel over "
        f"{_window(shown)} ({_fit_summary(shown)}; {shown.library or 'library not recorded'})."
        " ROI is the modelled incremental return per dollar over that window, with its 90% "
        "credible interval; attribution ROAS (position-based) credits touches, it does not "
        "measure what spend caused."
    )
    if rejected is not None:
        statement += (
            f" A later fit ({run_label(rejected)}) was rejected: "
            f"{rejected.reason or 'no reason recorded'}."
        )
    return MmmSection(
        status=MmmStatus.CURRENT,
        statement=statement,
        run=shown,
        rejected=rejected,
        channels=ordered,
        curves=_curves(curves or {}, allocation, allocation_periods, channels, shown),
        allocation=sorted(allocation, key=lambda a: a.channel),
        allocation_budget=allocation_budget,
        allocation_periods=allocation_periods,
        expected_gain=gain,
        expected_gain_lower=low,
        expected_gain_upper=high,
    )


def _money(value: float | None) -> str:
    return fmt_value(value, Fmt.MONEY)


def _ratio(value: float | None) -> str:
    return fmt_value(value, Fmt.RATIO)


def roi_interval(channel: MmmChannel | None) -> str:
    if channel is None:
        return "n/a"
    return f"{_ratio(channel.roi_lower)} – {_ratio(channel.roi_upper)}"


def gain_text(section: MmmSection) -> str:
    """``+$12,300 (90% interval -$1,200 to +$25,000)`` ('n/a' without an allocation)."""
    if section.expected_gain is None:
        return "n/a"

    def signed(value: float | None) -> str:
        return ("+" if value is not None and value >= 0 else "") + _money(value)

    if section.expected_gain_lower is None or section.expected_gain_upper is None:
        return f"{signed(section.expected_gain)} (90% interval not stored with this fit: refit)"
    return (
        f"{signed(section.expected_gain)} (90% interval {signed(section.expected_gain_lower)} "
        f"to {signed(section.expected_gain_upper)})"
    )


def horizon_text(section: MmmSection) -> str:
    periods = section.allocation_periods or 0
    grain = section.run.grain if section.run else "week"
    return f"{periods} {_PERIOD_WORD.get(grain, 'periods')}"


def mmm_recommendation(section: MmmSection | None) -> Recommendation | None:
    """The budget shift the optimiser supports: from the channel it cuts most to the one it
    adds most, with the whole split's expected gain and interval. None without a current
    run, without an allocation, when the split gains nothing or moves under
    :data:`MIN_SHIFT_SHARE` of the budget."""
    if section is None or section.run is None or not section.allocation:
        return None
    gain, low, high = section.expected_gain, section.expected_gain_lower, \
        section.expected_gain_upper
    if gain is None or gain <= 0:
        return None
    changes = sorted(
        ((a.recommended_spend - a.current_spend, a.channel, a) for a in section.allocation),
    )
    (cut, source, _), (add, target, _) = changes[0], changes[-1]
    budget = section.allocation_budget or sum(a.current_spend for a in section.allocation)
    moved = sum(max(0.0, a.current_spend - a.recommended_spend) for a in section.allocation)
    if cut >= 0 or add <= 0 or moved < MIN_SHIFT_SHARE * max(budget, 1e-9):
        return None
    amount = round(min(-cut, add), 2)
    run = section.run
    by_channel = {c.channel: c for c in section.channels}
    src, tgt = by_channel.get(source), by_channel.get(target)
    evidence = (
        f"marketing mix model {run_label(run)} ({target_label(run.target)}, "
        f"{_window(run)})"
    )
    others = len([c for c in changes if abs(c[0]) > 0.005 * max(budget, 1.0)]) - 2
    rest = f" and {others} more channel change(s) in the optimiser's split" if others > 0 else ""
    reason = (
        f"Shift {_money(amount)} over the next {horizon_text(section)} from {source} "
        f"(MMM ROI {_ratio(src.roi if src else None)}, 90% {roi_interval(src)}; marginal "
        f"{_ratio(src.marginal_roi if src else None)}) to {target} (MMM ROI "
        f"{_ratio(tgt.roi if tgt else None)}, 90% {roi_interval(tgt)}; marginal "
        f"{_ratio(tgt.marginal_roi if tgt else None)}){rest}: expected "
        f"{gain_text(section)} {target_label(run.target)} against the current mix of the "
        f"same {_money(budget)} budget. Evidence: {evidence}. Move in steps and re-check."
    )
    return Recommendation(
        action=Action.SHIFT_BUDGET,
        channel=source,
        to_channel=target,
        amount=amount,
        roas_by_model={
            f"{source}:mmm_roi": src.roi if src else None,
            f"{target}:mmm_roi": tgt.roi if tgt else None,
            f"{source}:{DEFAULT_MODEL}": src.attribution_roas if src else None,
            f"{target}:{DEFAULT_MODEL}": tgt.attribution_roas if tgt else None,
        },
        consensus_roas=tgt.roi if tgt else None,
        # The interval of the gain excludes zero: the model is confident the split pays.
        confidence=Confidence.HIGH if low is not None and low > 0 else Confidence.LOW,
        reason=reason,
        spend=src.spend if src else None,
        spend_at_risk=amount,
        numbers={
            "expected_gain": gain, "expected_gain_lower": low, "expected_gain_upper": high,
            "budget": budget, "horizon_periods": float(section.allocation_periods or 0),
            "mmm_run_version": float(run.version),
            "from_mmm_roi": src.roi if src else None, "to_mmm_roi": tgt.roi if tgt else None,
        },
        evidence=f"Marketing mix model {run_label(run)}",
    )
