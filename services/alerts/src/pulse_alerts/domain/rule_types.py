"""The built-in rule types, each one registered class (see :mod:`.rule_base`).

Pure: evaluation gets the snapshot and an :class:`EvalContext` the service fetched.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from pulse_alerts.domain.model import Observation
from pulse_alerts.domain.rule_base import (
    Direction,
    Duration,
    EvalContext,
    Evaluation,
    Op,
    RelatedRead,
    RuleBase,
    TimerReads,
    finite,
    observe,
    rule_type,
    scope_context,
    series_labels,
)
from pulse_shared.events import Grain, KpiSnapshot

SOURCES = ("touchpoints", "spend", "subscriptions", "pipeline", "budgets", "martech", "deliverability",
           "usage", "accounts", "feedback", "tickets")


def _directional(direction: str, score: float, threshold: float) -> bool:
    if direction == "up":
        return score >= threshold
    if direction == "down":
        return score <= -threshold
    return abs(score) >= threshold


def _clean(history: Sequence[float | None], window: int) -> list[float]:
    return [float(v) for v in history[-window:] if v is not None and math.isfinite(v)]


def _score(value: float, mean: float, std: float) -> float:
    if std == 0:
        return 0.0 if value == mean else math.copysign(math.inf, value - mean)
    return (value - mean) / std


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


@rule_type
class ThresholdRule(RuleBase):
    """Static threshold: ``value`` above/below ``threshold``."""

    type: Literal["threshold"]
    op: Op
    threshold: float

    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        value = snapshot.value
        if value is None or not finite(value):
            return None
        breaching = value > self.threshold if self.op == "above" else value < self.threshold
        return observe(self, snapshot, breaching, value, self.threshold)


@rule_type
class ChangeRule(RuleBase):
    """Change vs an earlier period in percent (``periods_back: 1`` = previous period)."""

    type: Literal["change"]
    direction: Direction = "any"
    threshold_pct: float = Field(gt=0)
    periods_back: int = Field(default=1, ge=1, le=366)
    min_base: float = Field(default=0.0, ge=0, description="Skip when |base| ≤ this.")

    @property
    def history_periods(self) -> int:
        return self.periods_back

    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        value, history = snapshot.value, ctx.history
        if value is None or not finite(value) or len(history) < self.periods_back:
            return None
        base = history[-self.periods_back]
        if base is None or not finite(base) or abs(base) <= self.min_base or base == 0:
            return None
        change_pct = (value - base) / abs(base) * 100.0
        breaching = _directional(self.direction, change_pct, self.threshold_pct)
        return observe(self, snapshot, breaching, value, self.threshold_pct,
                       {"baseline": base, "change_pct": change_pct})


class _DeviationRule(RuleBase):
    """Fires when the value deviates from a baseline of the last ``window`` periods by more
    than ``threshold`` standard deviations; subclasses say how the baseline is computed.
    Not registered itself: it has no ``type``."""

    direction: Direction = "any"
    threshold: float = Field(default=3.0, gt=0)
    window: int = Field(default=28, ge=3, le=366)
    min_periods: int = Field(default=7, ge=3)

    @property
    def history_periods(self) -> int:
        return self.window

    def baseline(self, values: list[float]) -> tuple[float, float]:
        """(mean, standard deviation) of the history."""
        raise NotImplementedError

    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        value = snapshot.value
        values = _clean(ctx.history, self.window)
        if value is None or not finite(value) or len(values) < self.min_periods:
            return None
        mean, std = self.baseline(values)
        score = _score(value, mean, std)
        breaching = _directional(self.direction, score, self.threshold)
        return observe(self, snapshot, breaching, value, self.threshold,
                       {"baseline": mean, "zscore": score})


@rule_type
class ZScoreRule(_DeviationRule):
    """Deviation from the mean of the last ``window`` periods, in standard deviations."""

    type: Literal["zscore"]

    def baseline(self, values: list[float]) -> tuple[float, float]:
        mean = sum(values) / len(values)
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@rule_type
class EwmaRule(_DeviationRule):
    """Deviation from an exponentially weighted moving average (EWM std units)."""

    type: Literal["ewma"]
    alpha: float = Field(default=0.3, gt=0, le=1)
    window: int = Field(default=60, ge=3, le=366)

    def baseline(self, values: list[float]) -> tuple[float, float]:
        return ewma_stats(values, self.alpha)


@rule_type
class BudgetRule(RuleBase):
    """Budget: projected month-end spend (``pacing``) or spend to date (``overspend``)
    above the month's budget by more than ``tolerance_pct``."""

    type: Literal["budget"]
    mode: Literal["pacing", "overspend"] = "pacing"
    tolerance_pct: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _scope(self) -> BudgetRule:
        kpi = "projected_spend" if self.mode == "pacing" else "spend_to_date"
        if self.kpi not in ("*", kpi):
            raise ValueError(f"kpi of a budget rule in mode {self.mode} is {kpi}")
        object.__setattr__(self, "kpi", kpi)
        if self.grain is None:
            object.__setattr__(self, "grain", Grain.MONTH)
        return self

    def related_reads(self, snapshot: KpiSnapshot) -> list[RelatedRead]:
        return [RelatedRead((("budget",), snapshot.grain.value, snapshot.dimension,
                             snapshot.dimension_value, snapshot.period_start, 1))]

    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        value = snapshot.value
        budgets = ctx.related.get("budget") or ()
        budget = budgets[-1] if budgets else None
        if value is None or not finite(value) or budget is None or budget <= 0:
            return None
        limit = budget * (1 + self.tolerance_pct / 100.0)
        return observe(self, snapshot, value > limit, value, limit, {"baseline": budget})


@rule_type
class CampaignStatusRule(RuleBase):
    """Campaign health from daily campaign KPIs: spend without clicks/leads for ``days``
    days, or no spend on a campaign that has a budget this month."""

    # A silent campaign publishes no snapshots: the timer looks for ``no_spend``.
    on_timer: ClassVar[bool] = True

    type: Literal["campaign_status"]
    condition: Literal["spend_without_clicks", "spend_without_leads", "no_spend"]
    days: int = Field(default=3, ge=1, le=90)
    min_spend: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _scope(self) -> CampaignStatusRule:
        object.__setattr__(self, "dimension", "campaign")
        object.__setattr__(self, "grain", Grain.DAY)
        if self.kpi == "*":
            object.__setattr__(self, "kpi", "spend")
        return self

    PRIOR_DAYS: ClassVar[int] = 7

    @property
    def needed_kpis(self) -> tuple[str, ...]:
        if self.condition == "spend_without_clicks":
            return ("spend", "clicks")
        if self.condition == "spend_without_leads":
            return ("spend", "leads")
        return ("spend", "budget")

    @property
    def trigger_kpis(self) -> tuple[str, ...]:
        return self.needed_kpis

    def triggered_by(self, snapshot: KpiSnapshot) -> bool:
        return (
            self.enabled
            and snapshot.kpi in self.needed_kpis
            and snapshot.grain.value == "day"
            and snapshot.dimension == "campaign"
            and self.matches(self.kpi, "day", "campaign", snapshot.dimension_value)
        )

    def related_reads(self, snapshot: KpiSnapshot) -> list[RelatedRead]:
        dv, start = snapshot.dimension_value, snapshot.period_start
        kpis = self.needed_kpis
        reads = [RelatedRead(
            (tuple(k for k in kpis if k != "budget"), "day", "campaign", dv, start, self.days))]
        if "budget" in kpis:
            before = start - dt.timedelta(days=self.days)
            reads += [
                RelatedRead((("budget",), "month", "campaign", dv, start.replace(day=1), 1)),
                RelatedRead((("spend",), "day", "campaign", dv, before, self.PRIOR_DAYS),
                            into="prior_spend"),
            ]
        return reads

    def series_of(self, snapshot: KpiSnapshot) -> dict[str, str]:
        """The campaign's spend series, whichever of its KPIs triggered the evaluation."""
        return series_labels(self, self._spend_scope(snapshot), "spend")

    def _spend_scope(self, snapshot: KpiSnapshot) -> dict[str, Any]:
        return {**scope_context(self, snapshot), "kpi": "spend"}

    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        related: Mapping[str, Sequence[float | None]] = ctx.related
        spend = [v or 0.0 for v in (related.get("spend") or ())][-self.days :]
        if len(spend) < self.days:
            return None
        total_spend = sum(spend)
        if self.condition == "no_spend":
            # active = a budget this month, or spend in the week before the window
            budgets = related.get("budget") or ()
            budget = budgets[-1] if budgets else None
            prior = sum(v or 0.0 for v in (related.get("prior_spend") or ()))
            active = bool(budget) or prior > 0
            breaching = active and total_spend <= self.min_spend
        else:
            other = "clicks" if self.condition == "spend_without_clicks" else "leads"
            others = [v or 0.0 for v in (related.get(other) or ())][-self.days :]
            breaching = (
                all(s > 0 for s in spend)
                and total_spend > self.min_spend
                and len(others) == self.days
                and sum(others) == 0
            )
        threshold = self.min_spend
        scope = self._spend_scope(snapshot)
        return Observation(
            rule=self.name,
            kpi="spend",
            labels=self.series_of(snapshot),
            breaching=breaching,
            value=total_spend,
            threshold=threshold,
            as_of=snapshot.computed_at,
            period_start=snapshot.period_start,
            context={**scope, "value": total_spend, "threshold": threshold, "days": self.days},
        )

    def backtest_series(self) -> tuple[str, str]:
        return "spend", "campaign"

    def backtest_includes(
        self, kpi: str, grain: str, dimension: str, dimension_value: str
    ) -> bool:
        return True  # the read is already the rule's campaigns' daily spend

    @classmethod
    def observe_timer(
        cls, rules: Sequence[RuleBase], now: dt.datetime, reads: TimerReads
    ) -> list[Evaluation]:
        """``no_spend``: evaluate every recently active campaign (window ends yesterday)."""
        no_spend = [r for r in rules if isinstance(r, cls) and r.condition == "no_spend"]
        if not no_spend:
            return []
        until = now.date() - dt.timedelta(days=1)
        horizon = max(r.days for r in no_spend) + cls.PRIOR_DAYS
        out: list[Evaluation] = []
        for campaign in reads.recent_campaigns(until, horizon):
            snap = KpiSnapshot(
                kpi="spend", grain=Grain.DAY, period=until.isoformat(), period_start=until,
                dimension="campaign", dimension_value=campaign, value=None, unit="USD",
                computed_at=now,
            )
            for rule in no_spend:
                if rule.matches("spend", "day", "campaign", campaign):
                    out.append((rule, rule.evaluate(snap, reads.context(rule, snap))))
        return out


@rule_type
class FreshnessRule(RuleBase):
    """No events of ``source`` ingested for ``max_age`` (evaluated on the timer)."""

    kpi_scoped: ClassVar[bool] = False  # scoped by source, not by KPI
    on_timer: ClassVar[bool] = True

    type: Literal["freshness"]
    source: Literal["touchpoints", "spend", "subscriptions", "pipeline", "budgets", "deliverability",
                    "usage"]
    max_age: Duration

    def matches(self, kpi: str, grain: str, dimension: str, dimension_value: str) -> bool:
        return False

    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        return None  # never on a snapshot: see observe_timer

    def backtest_series(self) -> tuple[str, str]:
        raise ValueError("freshness rules depend on ingestion times, not KPI history")

    @classmethod
    def observe_timer(
        cls, rules: Sequence[RuleBase], now: dt.datetime, reads: TimerReads
    ) -> list[Evaluation]:
        out: list[Evaluation] = []
        last_seen: dict[str, dt.datetime | None] = {}
        for rule in rules:
            if not isinstance(rule, cls):
                continue
            if rule.source not in last_seen:
                last_seen[rule.source] = reads.last_ingested(rule.source)
            out.append((rule, evaluate_freshness(rule, last_seen[rule.source], now)))
        return out


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


@rule_type
class ForecastRule(RuleBase):
    """Forecast ``horizon`` periods ahead with prediction intervals (statsforecast);
    fires when the chosen interval bound crosses ``threshold``."""

    needs_forecaster: ClassVar[bool] = True

    type: Literal["forecast"]
    op: Op
    threshold: float
    horizon: int = Field(default=14, ge=7, le=30)
    level: int = Field(default=90, ge=50, le=99)
    window: int = Field(default=90, ge=14, le=730)
    min_periods: int = Field(default=21, ge=7)
    bound: Literal["lower", "mean", "upper"] | None = Field(
        default=None, description="Default: upper for above, lower for below."
    )

    @property
    def history_periods(self) -> int:
        return self.window

    @property
    def effective_bound(self) -> str:
        return self.bound or ("upper" if self.op == "above" else "lower")

    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        value, forecaster = snapshot.value, ctx.forecaster
        if value is None or not finite(value) or forecaster is None:
            return None
        values = [*_clean(ctx.history, self.window - 1), float(value)]
        if len(values) < self.min_periods:
            return None
        path = forecaster(values, self.horizon, self.level)
        if not path:
            return None
        index = {"mean": 0, "lower": 1, "upper": 2}[self.effective_bound]
        bounds = [step[index] for step in path]
        if self.op == "above":
            extreme = max(bounds)
            breaching = extreme > self.threshold
        else:
            extreme = min(bounds)
            breaching = extreme < self.threshold
        return observe(self, snapshot, breaching, extreme, self.threshold,
                       {"baseline": value, "horizon": self.horizon,
                        "bound": self.effective_bound})
