"""The topic registry: every topic Pulse publishes, its schema, its partition key, the
ClickHouse table its events are stored in and, for inputs, the kind name users give at ingest.

This is the one event kind ↔ topic ↔ table mapping: code that needs the table or topic of a
kind looks it up here (``BY_INGEST_KIND["pipeline"].table == "pipeline_events"``).
"""

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
    #: ClickHouse table holding this topic's events (None: not stored).
    table: str | None = None
    #: Input topics: the kind's name at ingest (API path, ``--kind``, import formats).
    ingest_kind: str | None = None

    @property
    def dead_letter(self) -> str:
        return f"{self.name}.dlq"

    def stored_table(self) -> str:
        """:attr:`table`, for code that writes or reads this topic's events."""
        if self.table is None:
            raise ValueError(f"topic {self.name} is not stored in a table")
        return self.table

    def key_of(self, event: ev.Event) -> bytes:
        return str(getattr(event, self.key_field)).encode()


TOUCHPOINTS = Topic(
    "marketing.touchpoints.v1", ev.Touchpoint, "account_id",
    "Touchpoints; keyed by account so one account's journey stays in order.",
    table="touchpoints", ingest_kind="touchpoints",
)
SPEND = Topic(
    "marketing.spend.v1", ev.Spend, "campaign_id", "Daily ad spend per campaign.",
    table="spend", ingest_kind="spend",
)
SUBSCRIPTIONS = Topic(
    "billing.subscriptions.v1", ev.Subscription, "account_id",
    "Billing changes; keyed by account so MRR movements are computed in order.",
    table="subscriptions", ingest_kind="subscriptions",
)
PIPELINE = Topic(
    "crm.pipeline.v1", ev.PipelineEvent, "account_id", "Funnel stage changes per account.",
    table="pipeline_events", ingest_kind="pipeline",
)
BUDGETS = Topic(
    "marketing.budgets.v1", ev.Budget, "channel", "Monthly budgets per channel.",
    table="budgets", ingest_kind="budgets",
)
MARTECH = Topic(
    "marketing.martech.v1", ev.MartechCost, "vendor",
    "Monthly marketing tool and licence costs (martech) per vendor and category.",
    table="martech_costs", ingest_kind="martech",
)
ACCOUNTS = Topic(
    "crm.accounts.v1", ev.AccountProfile, "account_id",
    "Account firmographic profiles (plan, segment, industry, region, employee band) with "
    "the day each applies from; keyed by account so one account's changes stay in order.",
    table="account_profiles", ingest_kind="accounts",
)
DELIVERABILITY = Topic(
    "email.deliverability.v1", ev.EmailDeliveryStats, "sending_domain",
    "Daily e-mail delivery counts per sending domain and ESP campaign (deliverability).",
    table="email_deliverability", ingest_kind="deliverability",
)
USAGE = Topic(
    "product.usage.v1", ev.ProductUsage, "account_id",
    "Daily product usage per account and feature; keyed by account.",
    table="product_usage", ingest_kind="usage",
)
FEEDBACK = Topic(
    "cx.feedback.v1", ev.FeedbackResponse, "account_id",
    "NPS and CSAT survey answers per account (scores only, no comments); keyed by account.",
    table="feedback_responses", ingest_kind="feedback",
)
TICKETS = Topic(
    "cx.tickets.v1", ev.SupportTicket, "ticket_id",
    "Support ticket states (created, first response, resolved); keyed by ticket so one "
    "ticket's updates stay in order and the latest state wins.",
    table="support_tickets", ingest_kind="tickets",
)
CREDITS = Topic(
    "attribution.credits.v1", ev.AttributionCredit, "account_id",
    "Attribution credits per conversion, touchpoint and model (versioned).",
    table="attribution_credits",
)
KPI_SNAPSHOTS = Topic(
    "kpi.snapshots.v1", ev.KpiSnapshot, "kpi",
    "KPI values per grain × dimension × period, when they change, plus daily closes.",
    table="kpi_values",
)
ALERTS = Topic(
    "alerts.v1", ev.Alert, "fingerprint", "Alert state transitions.",
    table="alert_events",  # the outbox the transitions are published from
)
CAMPAIGN_ACTIONS = Topic(
    "campaign.actions.v1", ev.CampaignAction, "campaign_id",
    "Recommendations for manual review, e.g. pause a campaign.",
)
REPORT_READY = Topic(
    "report.ready.v1", ev.ReportReady, "report_kind", "Produced reports.",
    table="reports",  # one row per report × format
)
ERASURES = Topic(
    "privacy.erasures.v1", ev.Erasure, "subject",
    "Tombstones of erased subjects (accounts, contact hashes): never store them again.",
    table="erasures",  # the audit log the tombstones are published from
)

MMM_RESULTS = Topic(
    "mmm.results.v1", ev.MmmRunCompleted, "target",
    "Marketing mix model runs: incremental ROI per channel, or why a fit was rejected.",
    table="mmm_runs",
)

INPUT_TOPICS: tuple[Topic, ...] = (
    TOUCHPOINTS, SPEND, SUBSCRIPTIONS, PIPELINE, BUDGETS, MARTECH, DELIVERABILITY,
    USAGE, ACCOUNTS, FEEDBACK, TICKETS,
)
ALL_TOPICS: tuple[Topic, ...] = (
    *INPUT_TOPICS, CREDITS, KPI_SNAPSHOTS, ALERTS, CAMPAIGN_ACTIONS, REPORT_READY, ERASURES,
    MMM_RESULTS,
)
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
BY_KIND: dict[str, Topic] = {t.model.kind: t for t in ALL_TOPICS}
#: Input topics by their ingest kind name, in ingest order of INPUT_TOPICS.
BY_INGEST_KIND: dict[str, Topic] = {t.ingest_kind: t for t in INPUT_TOPICS if t.ingest_kind}
INGEST_KINDS: tuple[str, ...] = tuple(BY_INGEST_KIND)


def all_topic_names() -> list[str]:
    """Every topic including dead-letter topics, e.g. for pre-creating them."""
    return [n for t in ALL_TOPICS for n in (t.name, t.dead_letter)]
