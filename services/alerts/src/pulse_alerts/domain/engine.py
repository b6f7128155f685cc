"""In-memory evaluation engine: rules + current states + silences → outcomes.

No I/O: the service fetches the context a rule needs, calls :meth:`Engine.apply`, persists
the outcomes and only then :meth:`Engine.commit` s them, so a failed write leaves the
engine as it was and a redelivered batch is evaluated again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pulse_alerts.domain.lifecycle import Outcome, holds_later, step, tick
from pulse_alerts.domain.model import (
    AlertStatus,
    Observation,
    Silence,
    Status,
    fingerprint_of,
    is_silenced,
)
from pulse_alerts.domain.rules import RuleBase, RuleSet
from pulse_shared.events import KpiSnapshot

SeriesKey = tuple[str, str, str, str]


def latest_per_series(snapshots: Iterable[KpiSnapshot]) -> list[KpiSnapshot]:
    """Keep only the newest snapshot (period, then computed_at) of each KPI series."""
    latest: dict[SeriesKey, KpiSnapshot] = {}
    for snap in snapshots:
        key = (snap.kpi, snap.grain.value, snap.dimension, snap.dimension_value)
        cur = latest.get(key)
        if cur is None or (snap.period_start, snap.computed_at) > (
            cur.period_start,
            cur.computed_at,
        ):
            latest[key] = snap
    return list(latest.values())


@dataclass
class Engine:
    rules: RuleSet
    states: dict[str, AlertStatus] = field(default_factory=dict)
    silences: tuple[Silence, ...] = ()

    def plan(self, snapshots: Sequence[KpiSnapshot]) -> list[tuple[RuleBase, KpiSnapshot]]:
        """(rule, snapshot) pairs to evaluate: newest snapshot per series × matching rules,
        less those whose observation could only be stale.

        An observation on a snapshot carries the snapshot's period and computation time,
        so whether :func:`~pulse_alerts.domain.lifecycle.step` would discard it as stale is
        known before its context (history, related KPIs) is read: the alert it updates
        (:meth:`RuleBase.series_of`) already holds a later period (backfilled history, such
        as last month recomputed, arrives after the current period was evaluated) or the
        same computation (a campaign rule is triggered by the spend, clicks and leads
        snapshots of one pass). Those reads were most of the service's time on such
        batches."""
        pairs: list[tuple[RuleBase, KpiSnapshot]] = []
        planned: dict[str, tuple[dt.date, dt.datetime]] = {}
        for snap in latest_per_series(snapshots):
            at = (snap.period_start, snap.computed_at)
            for rule in self.rules.candidates(snap.kpi):
                if not (rule.matches(snap.kpi, snap.grain.value, snap.dimension,
                                     snap.dimension_value) or rule.triggered_by(snap)):
                    continue
                fingerprint = fingerprint_of(rule.name, rule.series_of(snap))
                state = self.states.get(fingerprint)
                if state is not None and holds_later(state, *at):
                    continue
                if fingerprint in planned and planned[fingerprint] >= at:
                    continue  # evaluated in this batch on as recent a snapshot
                planned[fingerprint] = at
                pairs.append((rule, snap))
        return pairs

    def apply(
        self, observations: Sequence[tuple[RuleBase, Observation]], now: dt.datetime
    ) -> list[Outcome]:
        """Outcomes of the observations against current states (states not modified)."""
        outcomes: dict[str, Outcome] = {}
        for rule, obs in observations:
            fp = obs.fingerprint
            prev = outcomes[fp].state if fp in outcomes else self.states.get(fp)
            silenced = is_silenced(obs.labels, self.silences, now)
            outcome = step(prev, obs, rule, now, silenced)
            if not outcome.changed:
                continue
            if fp in outcomes:
                earlier = outcomes[fp]
                outcome = Outcome(
                    outcome.state,
                    [*earlier.alerts, *outcome.alerts],
                    [*earlier.actions, *outcome.actions],
                )
            outcomes[fp] = outcome
        return list(outcomes.values())

    def tick(self, now: dt.datetime) -> list[Outcome]:
        """Timer pass over pending/firing/resolved states (``for``, repeats, silences)."""
        outcomes: list[Outcome] = []
        for state in self.states.values():
            if state.status is Status.INACTIVE:
                continue
            if state.status is Status.RESOLVED and state.notified != "firing":
                continue
            rule = self.rules.by_name(state.rule)
            if rule is None or not rule.enabled:
                continue
            outcome = tick(state, rule, now, is_silenced(state.labels, self.silences, now))
            if outcome.changed:
                outcomes.append(outcome)
        return outcomes

    def commit(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            self.states[outcome.state.fingerprint] = outcome.state

    def counts(self) -> dict[tuple[str, str, str], int]:
        """(status, rule, severity) → number of alerts, for gauges."""
        out: dict[tuple[str, str, str], int] = {}
        for s in self.states.values():
            key = (s.status.value, s.rule, s.severity.value)
            out[key] = out.get(key, 0) + 1
        return out

