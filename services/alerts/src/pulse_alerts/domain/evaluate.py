"""Rule evaluation: a KPI snapshot plus the history it needs → an :class:`Observation`.

Pure functions. ``None`` means "cannot evaluate" (value undefined, not enough history):
the alert's state is then left as it is, neither breaching nor resolved.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulse_alerts.domain.model import Observation
from pulse_alerts.domain.rules import (
    BudgetRule,
    CampaignStatusRule,
    ChangeRule,
    EwmaRule,
    ForecastRule,
    FreshnessRule,
    RuleBase,
    ThresholdRule,
    ZScoreRule,
)
from pulse_alerts.domain.templating import render
from pulse_shared.events import KpiSnapshot

# (values oldest→newest, horizon, level) → per step (mean, lower, upper)
Forecaster = Callable[[Sequence[float], int, int], list[tuple[float, float, float]]]


@dataclass(frozen=True)
class EvalContext:
    """What a rule may need beyond the snapshot, fetched by the service from kpi_values.

    ``history``: earlier values of the same series (oldest first, current excluded).
    ``related``: other KPIs of the same series key, each as values of the last periods
    ending with the current one (oldest first), e.g. ``{"budget": [12000.0]}``.
    """

    history: Sequence[float | None] = ()
    related: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    forecaster: Forecaster | None = None


def scope_context(rule: RuleBase, snapshot: KpiSnapshot) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "severity": rule.severity.value,
        "kpi": snapshot.kpi,
        "grain": snapshot.grain.value,
        "period": snapshot.period,
        "dimension": snapshot.dimension,
        "dimension_value": snapshot.dimension_value,
    }


def series_labels(
    rule: RuleBase, scope: Mapping[str, Any], kpi: str | None = None
) -> dict[str, str]:
    """Identity of the alert: rule, KPI series and the rule's own (rendered) labels."""
    labels = {"alertname": rule.name, "severity": rule.severity.value}
    if kpi is not None:
        labels.update(
            kpi=kpi,
            grain=str(scope["grain"]),
            dimension=str(scope["dimension"]),
            dimension_value=str(scope["dimension_value"]),
        )
        if scope["dimension"] in ("channel", "campaign"):
            labels[str(scope["dimension"])] = str(scope["dimension_value"])
    for key, template in rule.labels.items():
        labels[key] = render(template, scope)
    return labels


def evaluate(
    rule: RuleBase, snapshot: KpiSnapshot, ctx: EvalContext | None = None
) -> Observation | None:
    """Evaluate one KPI-based rule on one snapshot (scope already matched)."""
    ctx = ctx or EvalContext()
    scope = scope_context(rule, snapshot)
    result: tuple[bool, float | None, float | None, dict[str, Any]] | None
    if isinstance(rule, ThresholdRule):
        result = _threshold(rule, snapshot.value)
    elif isinstance(rule, ChangeRule):
        result = _change(rule, snapshot.value, ctx.history)
    elif isinstance(rule, ZScoreRule):
        result = _zscore(rule, snapshot.value, ctx.history)
    elif isinstance(rule, EwmaRule):
        result = _ewma(rule, snapshot.value, ctx.history)
    elif isinstance(rule, BudgetRule):
        result = _budget(rule, snapshot.value, ctx.related)
    elif isinstance(rule, CampaignStatusRule):
        return _campaign_status(rule, snapshot, ctx.related, scope)
    elif isinstance(rule, ForecastRule):
        result = _forecast(rule, snapshot.value, ctx.history, ctx.forecaster)
    else:
        return None
    if result is None:
        return None
    breaching, value, threshold, extra = result
    return Observation(
        rule=rule.name,
        kpi=snapshot.kpi,
        labels=series_labels(rule, scope, snapshot.kpi),
        breaching=breaching,
        value=value,
        threshold=threshold,
        as_of=snapshot.computed_at,
        period_start=snapshot.period_start,
        context={**scope, "value": value, "threshold": threshold, **extra},
    )


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _threshold(
    rule: ThresholdRule, value: float | None
) -> tuple[bool, float | None, float | None, dict[str, Any]] | None:
    if value is None or not _finite(value):
        return None
    breaching = value > rule.threshold if rule.op == "above" else value < rule.threshold
    return breaching, value, rule.threshold, {}


def _directional(direction: str, score: float, threshold: float) -> bool:
    if direction == "up":
        return score >= threshold
    if direction == "down":
        return score <= -threshold
    return abs(score) >= threshold


def _change(
    rule: ChangeRule, value: float | None, history: Sequence[float | None]
) -> tuple[bool, float | None, float | None, dict[str, Any]] | None:
    if value is None or not _finite(value) or len(history) < rule.periods_back:
        return None
    base = history[-rule.periods_back]
    if base is None or not _finite(base) or abs(base) <= rule.min_base or base == 0:
        return None
    change_pct = (value - base) / abs(base) * 100.0
    breaching = _directional(rule.direction, change_pct, rule.threshold_pct)
    return breaching, value, rule.threshold_pct, {"baseline": base, "change_pct": change_pct}


def _clean(history: Sequence[float | None], window: int) -> list[float]:
    return [float(v) for v in history[-window:] if v is not None and math.isfinite(v)]


def _zscore(
    rule: ZScoreRule, value: float | None, history: Sequence[float | None]
) -> tuple[bool, float | None, float | None, dict[str, Any]] | None:
    values = _clean(history, rule.window)
    if value is None or not _finite(value) or len(values) < rule.min_periods:
        return None
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    std = math.sqrt(var)
    if std == 0:
        score = 0.0 if value == mean else math.copysign(math.inf, value - mean)
    else:
        score = (value - mean) / std
    breaching = _directional(rule.direction, score, rule.threshold)
    return breaching, value, rule.threshold, {"baseline": mean, "zscore": score}


def ewma_stats(values: Sequence[float], alpha: float) -> tuple[float, float]:
    """Exponentially weighted mean and standard deviation (West's recursion)."""
    mean = values[0]
    var = 0.0
    for v in values[1:]:
        diff = v - mean
        incr = alpha * diff
        mean += incr
        var = (1 - alpha) * (var + diff * incr)
    return mean, math.sqrt(max(var, 0.0))


def _ewma(
    rule: EwmaRule, value: float | None, history: Sequence[float | None]
) -> tuple[bool, float | None, float | None, dict[str, Any]] | None:
    values = _clean(history, rule.window)
    if value is None or not _finite(value) or len(values) < rule.min_periods:
        return None
    mean, std = ewma_stats(values, rule.alpha)
    if std == 0:
        score = 0.0 if value == mean else math.copysign(math.inf, value - mean)
    else:
        score = (value - mean) / std
    breaching = _directional(rule.direction, score, rule.threshold)
    return breaching, value, rule.threshold, {"baseline": mean, "zscore": score}


def _budget(
    rule: BudgetRule, value: float | None, related: Mapping[str, Sequence[float | None]]
) -> tuple[bool, float | None, float | None, dict[str, Any]] | None:
    budgets = related.get("budget") or ()
    budget = budgets[-1] if budgets else None
    if value is None or not _finite(value) or budget is None or budget <= 0:
        return None
    limit = budget * (1 + rule.tolerance_pct / 100.0)
    return value > limit, value, limit, {"baseline": budget}


def _campaign_status(
    rule: CampaignStatusRule,
    snapshot: KpiSnapshot,
    related: Mapping[str, Sequence[float | None]],
    scope: dict[str, Any],
) -> Observation | None:
    spend = [v or 0.0 for v in (related.get("spend") or ())][-rule.days :]
    if len(spend) < rule.days:
        return None
    total_spend = sum(spend)
    if rule.condition == "no_spend":
        # active = a budget this month, or spend in the week before the window
        budgets = related.get("budget") or ()
        budget = budgets[-1] if budgets else None
        prior = sum(v or 0.0 for v in (related.get("prior_spend") or ()))
        active = bool(budget) or prior > 0
        breaching = active and total_spend <= rule.min_spend
        threshold = rule.min_spend
    else:
        other = "clicks" if rule.condition == "spend_without_clicks" else "leads"
        others = [v or 0.0 for v in (related.get(other) or ())][-rule.days :]
        breaching = (
            all(s > 0 for s in spend)
            and total_spend > rule.min_spend
            and len(others) == rule.days
            and sum(others) == 0
        )
        threshold = rule.min_spend
    scope = {**scope, "kpi": "spend"}
    return Observation(
        rule=rule.name,
        kpi="spend",
        labels=series_labels(rule, scope, "spend"),
        breaching=breaching,
        value=total_spend,
        threshold=threshold,
        as_of=snapshot.computed_at,
        period_start=snapshot.period_start,
        context={**scope, "value": total_spend, "threshold": threshold, "days": rule.days},
    )


def _forecast(
    rule: ForecastRule,
    value: float | None,
    history: Sequence[float | None],
    forecaster: Forecaster | None,
) -> tuple[bool, float | None, float | None, dict[str, Any]] | None:
    if value is None or not _finite(value) or forecaster is None:
        return None
    values = [*_clean(history, rule.window - 1), float(value)]
    if len(values) < rule.min_periods:
        return None
    path = forecaster(values, rule.horizon, rule.level)
    if not path:
        return None
    index = {"mean": 0, "lower": 1, "upper": 2}[rule.effective_bound]
    bounds = [step[index] for step in path]
    if rule.op == "above":
        extreme = max(bounds)
        breaching = extreme > rule.threshold
    else:
        extreme = min(bounds)
        breaching = extreme < rule.threshold
    return (
        breaching,
        extreme,
        rule.threshold,
        {"baseline": value, "horizon": rule.horizon, "bound": rule.effective_bound},
    )


def evaluate_freshness(
    rule: FreshnessRule, last_seen: dt.datetime | None, now: dt.datetime
) -> Observation | None:
    """Data freshness: minutes since the newest ingested event of ``rule.source``
    (``None`` while nothing of that kind was ever ingested)."""
    if last_seen is None:
        return None
    age_minutes = (now - last_seen).total_seconds() / 60
    limit = rule.max_age.total_seconds() / 60
    scope = {"rule": rule.name, "severity": rule.severity.value, "source": rule.source}
    labels = series_labels(rule, scope)
    labels["source"] = rule.source
    return Observation(
        rule=rule.name,
        kpi="freshness",
        labels=labels,
        breaching=age_minutes > limit,
        value=age_minutes,
        threshold=limit,
        as_of=now,
        context={**scope, "value": age_minutes, "threshold": limit, "age_minutes": age_minutes},
    )
