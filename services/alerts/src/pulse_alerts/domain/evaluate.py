"""Rule evaluation: a KPI snapshot plus the history it needs → an :class:`Observation`.

Pure. Each rule type evaluates itself (:meth:`RuleBase.evaluate`); this module is the one
entry point callers use. ``None`` means "cannot evaluate" (value undefined, not enough
history): the alert's state is then left as it is, neither breaching nor resolved.
"""

from __future__ import annotations

from pulse_alerts.domain.model import Observation
from pulse_alerts.domain.rule_base import (
    EvalContext,
    Forecaster,
    RuleBase,
    scope_context,
    series_labels,
)
from pulse_alerts.domain.rule_types import evaluate_freshness, ewma_stats
from pulse_shared.events import KpiSnapshot

__all__ = [
    "EvalContext", "Forecaster", "evaluate", "evaluate_freshness", "ewma_stats",
    "scope_context", "series_labels",
]


def evaluate(
    rule: RuleBase, snapshot: KpiSnapshot, ctx: EvalContext | None = None
) -> Observation | None:
    """Evaluate one KPI-based rule on one snapshot (scope already matched)."""
    return rule.evaluate(snapshot, ctx or EvalContext())
