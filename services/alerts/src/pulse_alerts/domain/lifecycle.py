"""The alert lifecycle as a pure state machine.

``step(previous state, observation, rule, now, silenced)`` and ``tick(state, rule, now,
silenced)`` return the new state plus the notifications to send. Notifications happen
once per transition into ``firing`` or ``resolved`` (plus repeats after
``repeat_interval``); ``pending`` and ``inactive`` are never notified. A silenced
transition is remembered as not yet notified and is sent when the silence expires (a
resolution is only sent if its firing was).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace

from pulse_alerts.domain.model import AlertStatus, Observation, Status
from pulse_alerts.domain.rules import RuleBase
from pulse_alerts.domain.templating import render
from pulse_shared.events import Alert, AlertState, CampaignAction, Channel


@dataclass(frozen=True)
class Outcome:
    """New state of one fingerprint and what to send because of it."""

    state: AlertStatus
    alerts: list[Alert] = field(default_factory=list)
    actions: list[CampaignAction] = field(default_factory=list)
    changed: bool = True


def initial_state(obs: Observation, rule: RuleBase) -> AlertStatus:
    return AlertStatus(
        fingerprint=obs.fingerprint,
        rule=rule.name,
        status=Status.INACTIVE,
        severity=rule.severity,
        kpi=obs.kpi,
        labels=dict(obs.labels),
    )


def is_stale(prev: AlertStatus, obs: Observation) -> bool:
    """Older period than already evaluated, or the very same snapshot again."""
    return holds_later(prev, obs.period_start, obs.as_of)


def holds_later(prev: AlertStatus, period_start: dt.date | None, as_of: dt.datetime) -> bool:
    """``prev`` already reflects a later period than ``period_start``, or a computation of
    that period as recent as ``as_of`` or more (the engine asks before evaluating)."""
    if prev.period_start is not None and period_start is not None:
        if period_start < prev.period_start:
            return True
        if period_start > prev.period_start:
            return False
    return prev.as_of is not None and as_of <= prev.as_of


def for_satisfied(state: AlertStatus, rule: RuleBase, now: dt.datetime) -> bool:
    return _for_met(state.consecutive, state.active_since, rule, now)


def _for_met(
    consecutive: int, active_since: dt.datetime | None, rule: RuleBase, now: dt.datetime
) -> bool:
    spec = rule.for_
    if consecutive < spec.evaluations:
        return False
    return now - (active_since or now) >= spec.duration


def step(
    prev: AlertStatus | None,
    obs: Observation,
    rule: RuleBase,
    now: dt.datetime,
    silenced: bool = False,
) -> Outcome:
    """Apply one observation; stale or duplicate observations change nothing."""
    if prev is not None and is_stale(prev, obs):
        return Outcome(prev, changed=False)
    base = prev or initial_state(obs, rule)
    changes: dict[str, object] = {
        "period_start": obs.period_start or base.period_start,
        "as_of": obs.as_of,
        "severity": rule.severity,
        "updated_at": now,
    }
    if obs.breaching or prev is None or base.status is Status.INACTIVE:
        # An alert shows the figures of the observation that breached: a later, calm
        # period (next month's spend) resolves it but must not rewrite what fired.
        changes.update(
            value=obs.value, threshold=obs.threshold, annotations=render_annotations(obs, rule)
        )
    status = base.status
    if obs.breaching:
        if status in (Status.INACTIVE, Status.RESOLVED):
            status = Status.PENDING
            consecutive = 1
            active_since: dt.datetime | None = now
            changes.update(fired_at=None, resolved_at=None)
        else:
            consecutive = base.consecutive + 1
            active_since = base.active_since
        changes.update(status=status, consecutive=consecutive, active_since=active_since)
        if status is Status.PENDING and _for_met(consecutive, active_since, rule, now):
            changes.update(status=Status.FIRING, fired_at=now)
    elif status is Status.PENDING:
        changes.update(status=Status.INACTIVE, active_since=None, consecutive=0)
    elif status is Status.FIRING:
        changes.update(status=Status.RESOLVED, resolved_at=now, consecutive=0)
        resolved_period = obs.context.get("period")
        if resolved_period:
            changes["annotations"] = {**base.annotations, "resolved_period": str(resolved_period)}
    else:
        changes.update(consecutive=0)
    state = replace(base, **changes)  # type: ignore[arg-type]
    return _deliver(state, rule, now, silenced)


def render_annotations(obs: Observation, rule: RuleBase) -> dict[str, str]:
    """The rule's annotations rendered from ``obs``, plus the data's period and time:
    ``period`` (the KPI period evaluated, e.g. ``2026-11``) and ``data_time`` (when that
    value was computed), so nobody mistakes the processing time for the data's."""
    annotations = {k: render(v, obs.context) for k, v in rule.annotations.items()}
    period = obs.context.get("period")
    if period:
        annotations["period"] = str(period)
    annotations["data_time"] = obs.as_of.isoformat()
    return annotations


def tick(
    state: AlertStatus, rule: RuleBase, now: dt.datetime, silenced: bool = False
) -> Outcome:
    """Timer evaluation: duration-based ``for``, repeat interval, silence expiry, and
    resolution of alerts whose series stopped reporting (``stale_after``)."""
    ticked = state
    stale_after = rule.effective_stale_after
    stale = (
        stale_after is not None
        and state.as_of is not None
        and state.status in (Status.PENDING, Status.FIRING)
        and now - state.as_of > stale_after
    )
    if stale and state.status is Status.PENDING:
        ticked = replace(
            state, status=Status.INACTIVE, active_since=None, consecutive=0, updated_at=now
        )
    elif stale:  # the series stopped reporting (campaign ended, KPI dropped): resolve
        ticked = replace(
            state, status=Status.RESOLVED, resolved_at=now, consecutive=0, updated_at=now
        )
    elif state.status is Status.PENDING and for_satisfied(state, rule, now):
        ticked = replace(state, status=Status.FIRING, fired_at=now, updated_at=now)
    outcome = _deliver(ticked, rule, now, silenced)
    if ticked is state and not outcome.alerts:
        return Outcome(state, changed=False)
    return outcome


def _deliver(
    state: AlertStatus, rule: RuleBase, now: dt.datetime, silenced: bool
) -> Outcome:
    alerts: list[Alert] = []
    actions: list[CampaignAction] = []
    if silenced:
        return Outcome(state)
    if state.status is Status.FIRING:
        first = state.notified != "firing"
        due = (
            state.last_sent_at is None or now - state.last_sent_at >= rule.repeat_interval
        )
        if first or due:
            alert = build_alert(state, AlertState.FIRING, now)
            alerts.append(alert)
            if first and rule.action is not None:
                actions.append(build_action(state, rule, alert))
            state = replace(state, notified="firing", last_sent_at=now)
    elif state.status is Status.RESOLVED and state.notified == "firing":
        alerts.append(build_alert(state, AlertState.RESOLVED, now))
        state = replace(state, notified="resolved", last_sent_at=now)
    return Outcome(state, alerts, actions)


def alert_id_of(fingerprint: str, state: str, starts_at: dt.datetime, sent_at: dt.datetime) -> str:
    """Deterministic: a re-sent notification keeps its id, so receivers can dedupe."""
    raw = f"{fingerprint}|{state}|{starts_at.isoformat()}|{sent_at.isoformat()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def build_alert(state: AlertStatus, kind: AlertState, now: dt.datetime) -> Alert:
    starts_at = state.fired_at or state.active_since or now
    return Alert(
        alert_id=alert_id_of(state.fingerprint, kind.value, starts_at, now),
        fingerprint=state.fingerprint,
        rule=state.rule,
        state=kind,
        severity=state.severity,
        kpi=state.kpi,
        labels=dict(state.labels),
        annotations=dict(state.annotations),
        value=state.value,
        threshold=state.threshold,
        starts_at=starts_at,
        ends_at=state.resolved_at if kind is AlertState.RESOLVED else None,
        sent_at=now,
    )


def build_action(state: AlertStatus, rule: RuleBase, alert: Alert) -> CampaignAction:
    """A recommendation for manual review, derived from a firing alert."""
    assert rule.action is not None
    labels = state.labels
    try:
        channel = Channel(labels.get("channel", "other"))
    except ValueError:
        channel = Channel.OTHER
    context: dict[str, object] = {
        "rule": rule.name,
        "severity": rule.severity.value,
        "kpi": state.kpi,
        "value": state.value,
        "threshold": state.threshold,
        **{k: labels[k] for k in ("grain", "dimension", "dimension_value") if k in labels},
    }
    reason = render(rule.action.reason, context)[:256]
    action_id = hashlib.sha256(f"{alert.alert_id}|{rule.action.action}".encode()).hexdigest()
    return CampaignAction(
        action_id=action_id[:32],
        action=rule.action.action,
        channel=channel,
        campaign_id=labels.get("campaign", ""),
        reason=reason,
        source_alert=alert.alert_id,
        created_at=alert.sent_at,
    )


def group_key(labels: dict[str, str], group_by: list[str]) -> str:
    """Alerts with the same key are notified together (one webhook/email message)."""
    return ",".join(f"{k}={labels.get(k, '')}" for k in group_by)
