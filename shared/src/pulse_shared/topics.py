"""The topic registry: every topic Pulse publishes, its schema and its partition key."""

from __future__ import annotations

from dataclasses import dataclass

from pulse_shared import events as ev


@dataclass(frozen=True)
class Topic:
    """A Kafka topic carrying one event model, keyed so related events stay ordered."""

    name: str
    model: type[ev.Event]
    key_field: str
    description: str

    @property
    def dead_letter(self) -> str:
        return f"{self.name}.dlq"

    def key_of(self, event: ev.Event) -> bytes:
        return str(getattr(event, self.key_field)).encode()


TOUCHPOINTS = Topic(
    "marketing.touchpoints.v1", ev.Touchpoint, "account_id",
    "Touchpoints; keyed by account so one account's journey stays in order.",
)
SPEND = Topic("marketing.spend.v1", ev.Spend, "campaign_id", "Daily ad spend per campaign.")
SUBSCRIPTIONS = Topic(
    "billing.subscriptions.v1", ev.Subscription, "account_id",
    "Billing changes; keyed by account so MRR movements are computed in order.",
)
PIPELINE = Topic(
    "crm.pipeline.v1", ev.PipelineEvent, "account_id", "Funnel stage changes per account."
)
BUDGETS = Topic("marketing.budgets.v1", ev.Budget, "channel", "Monthly budgets per channel.")
CREDITS = Topic(
    "attribution.credits.v1", ev.AttributionCredit, "account_id",
    "Attribution credits per conversion, touchpoint and model (versioned).",
)
KPI_SNAPSHOTS = Topic(
    "kpi.snapshots.v1", ev.KpiSnapshot, "kpi",
    "KPI values per grain × dimension × period, when they change, plus daily closes.",
)
ALERTS = Topic("alerts.v1", ev.Alert, "fingerprint", "Alert state transitions.")
CAMPAIGN_ACTIONS = Topic(
    "campaign.actions.v1", ev.CampaignAction, "campaign_id",
    "Recommendations for manual review, e.g. pause a campaign.",
)
REPORT_READY = Topic("report.ready.v1", ev.ReportReady, "report_kind", "Produced reports.")

INPUT_TOPICS: tuple[Topic, ...] = (TOUCHPOINTS, SPEND, SUBSCRIPTIONS, PIPELINE, BUDGETS)
ALL_TOPICS: tuple[Topic, ...] = (
    *INPUT_TOPICS, CREDITS, KPI_SNAPSHOTS, ALERTS, CAMPAIGN_ACTIONS, REPORT_READY,
)
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
BY_KIND: dict[str, Topic] = {t.model.kind: t for t in ALL_TOPICS}


def all_topic_names() -> list[str]:
    """Every topic including dead-letter topics, e.g. for pre-creating them."""
    return [n for t in ALL_TOPICS for n in (t.name, t.dead_letter)]
