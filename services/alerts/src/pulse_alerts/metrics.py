"""Prometheus metrics of the alerts service (``pulse_alerts_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FIRING = Gauge(
    "pulse_alerts_firing", "Alerts currently firing, per rule and severity.",
    ["rule", "severity"],
)
PENDING = Gauge("pulse_alerts_pending", "Alerts currently pending (condition held, `for` not yet).")
RULES_LOADED = Gauge("pulse_alerts_rules_loaded", "Enabled rules loaded.")
EVALUATIONS = Counter(
    "pulse_alerts_evaluations_total", "Rule evaluations, per rule type.", ["type"]
)
TRANSITIONS = Counter(
    "pulse_alerts_transitions_total", "Alert state transitions.", ["state"]
)
NOTIFICATIONS = Counter(
    "pulse_alerts_notifications_total", "Notifications sent, per output and state.",
    ["output", "state"],
)
NOTIFICATION_FAILURES = Counter(
    "pulse_alerts_notification_failures_total",
    "Notifications that failed after all retries, per output.", ["output"],
)
SILENCED = Counter(
    "pulse_alerts_silenced_total", "Transitions whose notification a silence held back."
)
EVALUATION_SECONDS = Histogram(
    "pulse_alerts_batch_seconds", "Time to evaluate one snapshot batch and send its alerts.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
